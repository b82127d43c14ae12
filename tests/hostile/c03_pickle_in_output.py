# expect-error: InvalidOutput
# class 3: a step output whose __reduce__ would run code in the process that unpickles it
import os


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/PWNED",))


async def run(event, step, env):
    return await step.do("evil", lambda: Evil(), retries={"limit": 0})
