"""A step whose result is in the status never runs again — even when the operator that
started an advance dies in the middle of it.

The interleaving behind the chaos suite's rare re-runs, forced: the operator is SIGKILLed
while a step runs; the new operator drives the instance again, and the step (slow only the
first time) completes and is persisted quickly. Before the fix the old advance went on in
the sandbox with no one to answer to and ran the step again *after* that result was
persisted; now an advance whose caller is gone is killed at once (runner: the request's
connection closed; zygote: the runner's connection closed).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from conftest import OperatorProcess, wait_for
from e2e.conftest import Tenant

pytestmark = pytest.mark.slow

SLOW_FIRST = """
import time

async def run(event, step, env):
    env.db.execute("CREATE TABLE IF NOT EXISTS ledger (step TEXT, at REAL)")
    env.db.execute("CREATE TABLE IF NOT EXISTS marks (m TEXT)")

    def slow():
        first = not env.db.query("SELECT m FROM marks")
        env.db.execute("INSERT INTO marks VALUES ('started')")
        if first:
            time.sleep(8)  # the advance whose operator dies is still here
        env.db.execute("INSERT INTO ledger VALUES ('slow', ?)", (time.time(),))
        return "done"

    return await step.do("slow", slow)
"""


def test_an_orphaned_advance_never_runs_a_step_after_its_result_is_persisted(
    tenant_factory: Callable[..., Tenant], operator_process: OperatorProcess
) -> None:
    tenant = tenant_factory()
    tenant.define("slow", SLOW_FIRST)
    tenant.wait_revision("slow", 1)
    inst = tenant.start("slow")

    def started() -> bool:
        try:
            return bool(tenant.query("SELECT m FROM marks"))
        except Exception:
            return False

    wait_for(started, "the first attempt of the slow step started", 120)
    operator_process.kill()  # mid-step: its HTTP call to the runner dies with it
    operator_process.start()

    persisted_at = None
    deadline = time.monotonic() + 120
    while persisted_at is None and time.monotonic() < deadline:
        steps = {s["name"]: s for s in tenant.status(inst).get("steps") or []}
        if (steps.get("slow") or {}).get("state") == "Complete":
            persisted_at = time.time()
        time.sleep(0.05)
    assert persisted_at is not None, tenant.status(inst)
    time.sleep(10)  # longer than the first attempt's sleep: an orphan would have finished
    rows = [at for (at,) in tenant.query("SELECT at FROM ledger")]
    late = [at - persisted_at for at in rows if at > persisted_at]
    assert not late, f"the step ran again {late} s after its result was persisted"
    assert tenant.status(inst)["phase"] == "Complete"
    assert tenant.status(inst)["output"] == "done"
