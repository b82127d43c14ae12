# expect-output-without: ESCAPED
# twice
# class 9: a .pth or usercustomize file in the data dir does nothing
import os
import signal


async def run(event, step):
    def probe():
        if os.path.exists("../PWNED2"):
            return "ESCAPED: a planted .pth ran"
        if os.path.exists("evil.pth"):
            return "contained: planted files were not run by the new worker host"
        for d in (".", ".."):
            with open(os.path.join(d, "evil.pth"), "w") as f:
                f.write("import os; open('/proc/self/cwd/../PWNED2', 'w').write('x')\n")
            with open(os.path.join(d, "usercustomize.py"), "w") as f:
                f.write("open('/proc/self/cwd/../PWNED2', 'w').write('x')\n")
        os.kill(os.getppid(), signal.SIGKILL)
        return "planted"
    return await step.do("probe", probe)
