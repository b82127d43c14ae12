# expect-output-without: ESCAPED
# class 8: a setuid copy of a shell made in the jail is owned by the tenant's unprivileged uid
import os
import shutil


async def run(event, step):
    def plant():
        shutil.copy("/bin/sh", "suid-sh")
        os.chmod("suid-sh", 0o4755)
        return "planted"
    return await step.do("plant", plant)
