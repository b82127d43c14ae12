# expect-output-without: forged
# next-advance-first-try
# class 16: tenant code writes the tenant's step-results store to make other instances
# recall a result for a step they never ran: it INSERTs rows saying "forged" for step
# 'ok' (the harness's benign program) in the runs the harness starts next and for every
# [run, step] in params["targets"], rewrites every row already there, and sends the runner
# forged result frames vouching for those bytes. The runner vouches only for the run the
# operator named (this one): the next instance's step runs for real and returns 'fine'
# (tests/sandbox/test_hostile.py), and test_forged_records.py checks the victim's answer
import gc
import hashlib
import json
import os
import stat
import struct

FORGED = json.dumps("forged").encode()


def frame(value):
    body = json.dumps(value).encode()
    return struct.pack(">I", len(body)) + body


def _is_socket(fd):
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


async def run(event, step, env):
    params = event["payload"] or {}

    def plant():
        own = next(o._run for o in gc.get_objects() if type(o).__name__ == "SqliteStepResults")
        instance, _, started = own.partition("@")
        prefix, _, n = instance.rpartition("-")
        targets = [tuple(t) for t in params.get("targets") or []]
        if n.isdigit():  # the harness names its runs i-0, i-1...: the next fifty
            targets += [(f"{prefix}-{int(n) + k}@{started}", "ok") for k in range(1, 51)]
        env.db.execute(
            "CREATE TABLE IF NOT EXISTS _tenantflow_step_results "
            "(run TEXT, step TEXT, data BLOB, at REAL, PRIMARY KEY (run, step))"
        )
        env.db.execute("UPDATE _tenantflow_step_results SET data = ?", (FORGED,))
        env.db.executemany(
            "INSERT OR REPLACE INTO _tenantflow_step_results VALUES (?, ?, ?, 9e9)",
            [(r, s, FORGED) for r, s in targets],
        )
        # and ask the runner to vouch for those bytes under every step name it may hold
        sha = hashlib.sha256(FORGED).hexdigest()
        lies = b"".join(
            frame({"result": {"step": s, "sha256": sha}}) for s in {"ok", *(s for _, s in targets)}
        )
        for fd in range(3, 256):
            if _is_socket(fd):
                os.write(fd, lies)
        return len(targets)

    planted = await step.do("plant", plant, retries={"limit": 0})
    return {"planted": planted}
