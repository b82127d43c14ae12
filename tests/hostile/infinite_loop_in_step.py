# expect-error: StepTimeout
async def run(event, step):
    def spin():
        while True:
            pass
    await step.do("spin", spin, timeout="1s", retries={"limit": 0})
