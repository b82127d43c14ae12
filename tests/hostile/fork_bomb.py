# expect-lost: an advance may hold at most 64 processes; a bomb that keeps forking is killed
# next-advance-first-try
import contextlib
import os


async def run(event, step):
    def bomb():
        while True:
            with contextlib.suppress(OSError):  # the sandbox's pids limit: keep trying
                os.fork()

    await step.do("bomb", bomb, retries={"limit": 0})
