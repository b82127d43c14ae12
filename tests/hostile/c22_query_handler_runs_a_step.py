# expect-output-without: sneaked
# then-query: sneak
# class 22: a query handler (issue 36.7) tries to run steps: it schedules step.do on the
# replay's loop and calls the attempt machinery directly, each step writing a table. A
# query's replay claims nothing new (a new step halts), its tasks are cancelled once the
# handler returns, and env.db refuses the write of anything it runs; no step is recorded
import asyncio


async def run(event, step, env):
    tasks = []

    def write():
        env.db.execute("CREATE TABLE sneaked (x)")
        return "sneaked"

    def sneak():
        tasks.append(asyncio.ensure_future(step.do("sneak", write)))
        tasks.append(asyncio.ensure_future(step.attempt("sneak-direct", write, 5.0, 1)))
        return "asked"

    step.query("sneak", sneak)
    return await step.do(
        "look", lambda: [r["name"] for r in env.db.query("SELECT name FROM sqlite_master")]
    )
