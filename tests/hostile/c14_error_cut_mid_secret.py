# expect-error: RuntimeError
# class 14: an error message whose 4,096-character cut falls inside the secret (this
# engine has no secrets to mask with): the runner masks the half left at the end
async def run(event, step):
    secret = event["payload"]["secret"]

    def fail():
        raise RuntimeError("x" * (4096 - 12) + secret)

    return await step.do("push", fail, retries={"limit": 0})
