# expect-output-without: ESCAPED
# class 1: the runner's socket/log directory (or any host dir) must not be writable in the jail
import os


async def run(event, step):
    def probe():
        found = []
        for top in ("/", "/root", "/run", "/var", "/home", "/work", "/usr", "/etc", "/opt"):
            for dirpath, dirnames, _ in os.walk(top):
                if dirpath.startswith(("/proc", "/sys", "/dev", "/tmp")):
                    dirnames[:] = []
                    continue
                if os.access(dirpath, os.W_OK) and not dirpath.startswith(os.getcwd().rsplit("/", 1)[0]):
                    found.append(dirpath)
                if len(found) > 5:
                    break
        return "ESCAPED " + ",".join(found) if found else "contained"
    return await step.do("probe", probe)
