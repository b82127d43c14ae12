# expect-output-without: ESCAPED
# class 2: freeze the worker host; the runner must notice and replace it (the harness then
# checks that this tenant and another one still advance)
import os
import signal


async def run(event, step):
    def freeze():
        os.kill(os.getppid(), signal.SIGSTOP)
        return "stopped"
    return await step.do("freeze", freeze)
