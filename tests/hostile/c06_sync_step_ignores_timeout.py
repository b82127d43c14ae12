# expect-error: StepTimeout
# class 6: a sync step that ignores its timeout; its thread dies with the advance's process
import time


async def run(event, step):
    await step.do("sleepy", lambda: time.sleep(3600), timeout="1s", retries={"limit": 0})
