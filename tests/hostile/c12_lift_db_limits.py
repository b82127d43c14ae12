# expect-output-without: ESCAPED
# class 12: lifting env.db's in-process limits does not lift the kernel's file-size limit
import os


async def run(event, step, env):
    def grow():
        env.db.limit(max_bytes=None, ops_per_second=None)
        env.db._conn.set_authorizer(None)
        env.db._conn.execute("PRAGMA max_page_count = 2147483646")
        env.db._conn.execute("CREATE TABLE IF NOT EXISTS blob (b BLOB)")
        try:
            for _ in range(100):
                env.db._conn.execute("INSERT INTO blob VALUES (zeroblob(1048576))")
        except Exception:
            pass
        sizes = {f: os.path.getsize(os.path.join("..", f)) for f in os.listdir("..")}
        for f in sizes:
            if f.startswith("tenant.sqlite3"):
                os.remove(os.path.join("..", f))  # leave the tenant usable for the next test
        over = {f: n for f, n in sizes.items() if n > (64 << 20)}
        return f"ESCAPED {over}" if over else "contained"
    return await step.do("grow", grow, retries={"limit": 0})
