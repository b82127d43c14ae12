"""The workflows the benchmarks run (one copy each, shared)."""

THREE_STEPS = """
async def run(event, step):
    a = await step.do("one", lambda: 1)
    b = await step.do("two", lambda: a + 1)
    return await step.do("three", lambda: a + b)
"""
