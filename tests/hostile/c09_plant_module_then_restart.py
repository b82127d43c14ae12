# expect-output-without: ESCAPED
# twice
# class 9: modules planted in the data dir and scratch are never imported by a new worker host
import os
import signal

PAYLOAD = "open('/proc/self/cwd/../PWNED', 'w').write('x')\n"


async def run(event, step):
    def probe():
        if os.path.exists("../PWNED"):
            return "ESCAPED: a planted module ran"
        if os.path.exists("argparse.py"):
            return "contained: planted files were not run by the new worker host"
        for d in (".", ".."):
            for name in ("argparse.py", "json.py", "selectors.py", "sitecustomize.py", "ctypes.py"):
                with open(os.path.join(d, name), "w") as f:
                    f.write(PAYLOAD)
        os.kill(os.getppid(), signal.SIGKILL)  # a new worker host starts for the next advance
        return "planted"
    return await step.do("probe", probe)
