# expect-error: SystemExit
import sys


async def run(event, step):
    sys.exit(4)
