# expect-error: SystemExit
import sys


async def run(event, step):
    await step.do("quit", lambda: sys.exit(3), retries={"limit": 0})
