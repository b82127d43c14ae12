# expect-error: beyond ±2^53
# class 5: an integer the API server's JSON would round
async def run(event, step):
    return await step.do("big", lambda: 2**64 + 1, retries={"limit": 0})
