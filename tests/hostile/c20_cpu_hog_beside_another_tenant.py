# expect-output-without: ESCAPED
# victim-during
# class 20: CPU is shared by tenant, not by process. Thirty processes of their own sessions
# spin for 2 s (each session was an autogroup weighing as much as another tenant's jail)
# while the harness times another tenant's trivial advance beside them
import os
import time


async def run(event, step):
    def spin():
        started = []
        for _ in range(30):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                os.setsid()
                while True:
                    pass
            started.append(pid)
        time.sleep(2.0)
        return f"{len(started)} spinning"

    return await step.do("spin", spin)
