# expect-lost
# class 2: kill the worker host outright; the advance dies with it (the host is the jail's
# or container's pid 1), and a new worker host serves the next advance
import os
import signal
import time


async def run(event, step):
    def kill():
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(5)  # the pid namespace goes down with its first process
        return "survived"
    return await step.do("kill", kill)
