# expect-error: DatabaseError
async def run(event, step, env):
    env.db.execute("ATTACH DATABASE '/tmp/other.sqlite3' AS other")
