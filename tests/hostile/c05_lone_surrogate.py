# expect-error: lone surrogate
# class 5: a string the API server would rewrite
async def run(event, step):
    return await step.do("sur", lambda: "a\ud800b", retries={"limit": 0})
