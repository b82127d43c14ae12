# expect-lost: SIGKILL to its own worker
import os
import signal


async def run(event, step):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    await step.do("kill", lambda: os.kill(os.getpid(), signal.SIGKILL), retries={"limit": 0})
