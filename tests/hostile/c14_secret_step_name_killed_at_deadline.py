# expect-lost
# class 14: a step whose name holds the tenant's secret blocks its process until the
# zygote kills it at the advance's deadline: the lost-attempt report names the step, and
# the runner's 503 must carry the name masked
import time


async def run(event, step):
    async def block():
        time.sleep(3600)  # blocks the event loop: no timeout fires, the deadline does

    return await step.do(f"deploy-{event['payload']['secret']}", block)
