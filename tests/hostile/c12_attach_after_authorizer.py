# expect-error: OperationalError
# class 12: with the authorizer removed, the other tenant's database is still out of reach
async def run(event, step, env):
    other = event["payload"]["other_data_dir"]

    def attach():
        env.db._conn.set_authorizer(None)
        env.db._conn.execute(f"ATTACH DATABASE '{other}/tenant.sqlite3' AS other")
        return env.db._conn.execute("SELECT count(*) FROM other.sqlite_master").fetchone()[0]
    await step.do("attach", attach, retries={"limit": 0})
