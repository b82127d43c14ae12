# expect-lost: the worker process ends itself
import os


async def run(event, step):
    await step.do("exit", lambda: os._exit(1), retries={"limit": 0})
