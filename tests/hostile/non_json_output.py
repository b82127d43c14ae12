# expect-error: InvalidOutput
async def run(event, step):
    await step.do("obj", lambda: {1, 2, 3})
