# expect-error: TypeError
# class 3: an env.log field whose __reduce__ would run code wherever it is unpickled
import os


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/PWNED",))


async def run(event, step, env):
    env.log.info("hello", payload=Evil())
    return "logged"
