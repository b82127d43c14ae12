# expect-error: InvalidOutput
async def run(event, step):
    await step.do("big", lambda: "x" * (100 * 1024 * 1024))
