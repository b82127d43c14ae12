"""The workflows the benchmarks run (one copy each, shared)."""

THREE_STEPS = """
async def run(event, step):
    a = await step.do("one", lambda: 1)
    b = await step.do("two", lambda: a + 1)
    return await step.do("three", lambda: a + b)
"""

# THREE_STEPS with async step bodies: no thread pool (a sync body runs in a thread so its
# timeout can fire while it works; engine/step.py)
THREE_ASYNC_STEPS = """
async def run(event, step):
    async def one():
        return 1

    async def two():
        return a + 1

    async def three():
        return a + b

    a = await step.do("one", one)
    b = await step.do("two", two)
    return await step.do("three", three)
"""

NO_STEPS = """
async def run(event, step):
    return 3
"""
