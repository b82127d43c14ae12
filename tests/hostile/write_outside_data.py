# expect-error: OSError
async def run(event, step):
    await step.do("scribble", lambda: open("/usr/evil.txt", "w").write("x"),
                  retries={"limit": 0})
