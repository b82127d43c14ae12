# expect-output-without: ESCAPED
# twice
# class 11: an open transaction left by one advance never swallows the next one's writes
async def run(event, step, env):
    def probe():
        env.db.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)")
        rows = env.db.query("SELECT k FROM t")
        if any(r["k"] == "committed" for r in rows):
            return "contained"
        if rows or env.db.query("SELECT name FROM sqlite_master WHERE name = 'marker'"):
            return "ESCAPED: the uncommitted write is visible"
        env.db.execute("INSERT INTO t VALUES ('committed')")
        env.db.execute("CREATE TABLE IF NOT EXISTS marker (x)")
        env.db.execute("BEGIN")
        env.db.execute("INSERT INTO t VALUES ('uncommitted')")
        return "left open"
    out = await step.do("probe", probe)
    if out == "contained" and any(r["k"] == "uncommitted" for r in env.db.query("SELECT k FROM t")):
        return "ESCAPED: the open transaction survived"
    return out
