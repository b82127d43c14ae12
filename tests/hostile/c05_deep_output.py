# expect-error: nested deeper
# class 5: a 100,000-deep return value
async def run(event, step):
    def deep():
        v = []
        for _ in range(100000):
            v = [v]
        return v
    return await step.do("deep", deep, retries={"limit": 0})
