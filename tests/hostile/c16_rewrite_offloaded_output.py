# expect-output-without: forged
# next-advance-first-try
# class 16: tenant code rewrites every offloaded output in the tenant's store (its own
# and other instances', under the same keys) and deletes none, so that a replay reads
# what it wrote: the bytes are checked against the digest in the journal, and a replay
# ignores a rewritten output and runs its step again (test_forged_records.py replays
# another instance after this program; here, the harness checks it is contained)
import json

FORGED = json.dumps({"blob": "forged"}).encode()


async def run(event, step, env):
    big = await step.do("big", lambda: {"blob": "x" * 40_000})  # over the inline cap

    def rewrite():
        env.db.execute("UPDATE _tenantflow_outputs SET data = ?", (FORGED,))
        return env.db.query("SELECT count(*) AS n FROM _tenantflow_outputs")[0]["n"]

    rewritten = await step.do("rewrite", rewrite, retries={"limit": 0})
    return {"rewritten": rewritten, "head": big["blob"][:5]}
