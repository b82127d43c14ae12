# expect-error: PermissionError
# class 8: the harness plants a root-only file in this tenant's data dir: unreadable here
async def run(event, step):
    await step.do("read", lambda: open("../root-only.txt").read(), retries={"limit": 0})
