# expect-output-without: ESCAPED
# class 21: env.db cannot grow past what the store has left (a file fills most of it, the
# database's own page cap is far off): the write fails with an error naming the limit,
# the transaction is rolled back, and the database is whole afterwards
import os


async def run(event, step, env):
    def grow():
        env.db.execute("CREATE TABLE IF NOT EXISTS c21 (n INTEGER, b BLOB)")
        filler, kept, error = "c21-filler.bin", 0, None
        try:
            with open(filler, "wb") as f:  # 40 of the 64 MiB: under each file's limit
                for _ in range(40):
                    f.write(b"f" * (1 << 20))
        except OSError:
            pass
        try:
            for n in range(200):  # up to 100 MiB: the store fills first
                env.db.execute("BEGIN")
                env.db.execute("INSERT INTO c21 VALUES (?, zeroblob(262144))", (n,))
                env.db.execute("INSERT INTO c21 VALUES (?, zeroblob(262144))", (n,))
                env.db.execute("COMMIT")
                kept += 2
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            try:
                env.db.execute("ROLLBACK")
            except Exception:
                pass  # already rolled back by SQLite
        os.remove(filler)
        integrity = env.db.query("PRAGMA integrity_check")[0]["integrity_check"]
        rows = env.db.query("SELECT count(*) AS n FROM c21")[0]["n"]
        env.db.execute("DROP TABLE c21")  # leave the tenant usable for the next test
        if (
            error is None
            or kept == 0
            or "StorageQuotaExceeded" not in error
            or "spec.limits.storage" not in error
            or "64 MiB" not in error
            or integrity != "ok"
            or rows != kept
        ):
            return f"ESCAPED error={error!r} integrity={integrity} rows={rows} kept={kept}"
        return f"contained after {kept} rows: {error}"

    return await step.do("grow", grow, retries={"limit": 0})
