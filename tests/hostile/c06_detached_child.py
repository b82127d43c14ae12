# expect-output-without: ESCAPED
# twice
# class 6: a detached child (setsid, double fork) must not outlive its advance
import os
import time


async def run(event, step):
    def probe():
        hb = "heartbeat"
        if os.path.exists(hb):
            before = os.stat(hb).st_mtime
            time.sleep(1.0)
            if os.stat(hb).st_mtime != before:
                return "ESCAPED: a child of the previous advance still runs"
            return "contained"
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                while True:
                    with open(hb, "w") as f:
                        f.write(str(time.time()))
                    time.sleep(0.1)
            os._exit(0)
        time.sleep(0.3)
        return "started"
    return await step.do("probe", probe)
