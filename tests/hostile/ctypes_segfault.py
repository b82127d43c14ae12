# expect-lost: a segfault through ctypes
import ctypes


async def run(event, step):
    await step.do("crash", lambda: ctypes.string_at(0), retries={"limit": 0})
