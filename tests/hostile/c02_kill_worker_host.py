# expect-output-without: ESCAPED
# class 2: kill the worker host outright; it is restarted for the next advance
import os
import signal


async def run(event, step):
    def kill():
        os.kill(os.getppid(), signal.SIGKILL)
        return "killed"
    return await step.do("kill", kill)
