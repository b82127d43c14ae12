# expect-error: RecursionError
async def run(event, step):
    def down(n):
        return down(n + 1)
    await step.do("recurse", lambda: down(0), retries={"limit": 0})
