# expect-error: OSError
async def run(event, step):
    await step.do("scribble", lambda: open("/evil.txt", "w").write("x"), retries={"limit": 0})
