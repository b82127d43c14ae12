# expect-output-without: planted
# then-query: plant
# class 22: a query handler (issue 36.7) tries to leave something behind: a table in
# env.db, a forged step-result row for the next run, the runner's vouching for it (result
# frames on every socket it holds), and a step record. The query runs in a read-only
# replay: env.db refuses every write, the runner takes no result frame from a query, and
# nothing of a query is recorded; the next advance of this program finds none of it
import hashlib
import json
import os
import stat
import struct

FORGED = json.dumps("planted").encode()


def frame(value):
    body = json.dumps(value).encode()
    return struct.pack(">I", len(body)) + body


async def run(event, step, env):
    def plant():
        tried = []
        for sql in (
            "CREATE TABLE planted (x)",
            "CREATE TABLE IF NOT EXISTS _tenantflow_step_results "
            "(run TEXT, step TEXT, data BLOB, at REAL, PRIMARY KEY (run, step))",
            "PRAGMA query_only = OFF",
        ):
            try:
                env.db.execute(sql)
                tried.append("written")
            except Exception as exc:
                tried.append(type(exc).__name__)
        sha = hashlib.sha256(FORGED).hexdigest()
        for fd in range(3, 256):
            try:
                if stat.S_ISSOCK(os.fstat(fd).st_mode):
                    os.write(fd, frame({"result": {"step": "look", "sha256": sha}}))
            except OSError:
                pass
        return tried

    step.query("plant", plant)
    return await step.do(
        "look", lambda: [r["name"] for r in env.db.query("SELECT name FROM sqlite_master")]
    )
