"""Sagas end to end (issue 43): rollbacks declared with the step run in reverse when an
instance fails or is terminated with rollback, on the real operator and sandboxes."""

from __future__ import annotations

from pathlib import Path

from e2e.conftest import GROUP, VERSION, Tenant, cli

SAGA = """
from tenantflow.sdk import NonRetryableError

async def run(event, step, env):
    p = event["payload"]

    def undo(ctx):
        return {"undid": ctx.step, "output": ctx.output, "because": ctx.error["name"]}

    def third():
        if p.get("fail"):
            raise NonRetryableError("the third step failed")
        return "three"

    await step.do("one", lambda: 1, rollback=undo)
    await step.do("two", lambda: 2, rollback=undo)
    if p.get("sleep"):
        await step.sleep("nap", "1h")
    await step.do("three", third, rollback=undo)
    return "done"
"""

FLAKY_ROLLBACK = """
from tenantflow.sdk import NonRetryableError

async def run(event, step, env):
    p = event["payload"]
    env.db.execute("CREATE TABLE IF NOT EXISTS calls (instance TEXT, n INTEGER)")

    def refund(ctx):
        env.db.execute("INSERT INTO calls VALUES (?, 1)", (ctx.instance_id,))
        calls = env.db.query("SELECT COUNT(*) AS n FROM calls WHERE instance = ?",
                             (ctx.instance_id,))[0]["n"]
        if calls <= p["failures"]:
            raise ConnectionError(f"refund service down (call {calls})")
        return {"refunded": ctx.output, "calls": calls}

    def fail():
        raise NonRetryableError("cannot ship")

    await step.do("reserve", lambda: "stock", rollback=lambda ctx: "released")
    await step.do("charge", lambda: 42, rollback=refund,
                  rollback_retries={"limit": 1, "delay": "1s", "backoff": "constant"})
    await step.do("ship", fail)
"""


def names(status: dict[str, object]) -> list[str]:
    return [s["name"] for s in status["steps"]]  # type: ignore[attr-defined,index]


def step(status: dict[str, object], name: str) -> dict[str, object]:
    return next(s for s in status["steps"] if s["name"] == name)  # type: ignore[attr-defined,index]


def test_a_three_step_saga_whose_third_step_fails_runs_two_rollbacks_in_reverse(
    tenant: Tenant,
) -> None:
    tenant.define("saga", SAGA)
    inst = tenant.start("saga", {"fail": True})
    done = tenant.wait_phase(inst, "Errored", "RollbackFailed", timeout=60)
    assert done["phase"] == "Errored", done.get("error")
    assert done["error"]["step"] == "three" and done["error"]["name"] == "NonRetryableError"
    assert names(done) == ["one", "two", "three", "compensation", "rollback:two", "rollback:one"]
    assert step(done, "compensation")["state"] == "Complete"
    assert step(done, "rollback:two")["output"] == {
        "undid": "two",
        "output": 2,
        "because": "NonRetryableError",
    }
    assert step(done, "rollback:one")["state"] == "Complete"


def test_a_saga_terminated_while_sleeping_rolls_back_what_completed(
    tenant: Tenant, kubeconfig: Path
) -> None:
    tenant.define("saga", SAGA)
    inst = tenant.start("saga", {"sleep": True})
    tenant.wait_phase(inst, "Waiting", timeout=60)
    said = cli(kubeconfig, "-n", tenant.ns, "terminate", inst, "--rollback").stdout
    assert "terminated" in said
    done = tenant.wait_phase(inst, "Terminated", "RollbackFailed", timeout=60)
    assert done["phase"] == "Terminated"
    assert names(done) == ["one", "two", "nap", "compensation", "rollback:two", "rollback:one"]
    assert step(done, "compensation")["error"]["name"] == "Terminated"
    assert step(done, "rollback:one")["output"]["because"] == "Terminated"  # type: ignore[index]
    assert step(done, "nap")["state"] == "Waiting"  # nothing forward ran after it
    status = cli(kubeconfig, "-n", tenant.ns, "status", inst, check=False).stdout
    assert "Compensation: Complete, triggered by Terminated" in status


def test_a_terminate_without_rollback_ends_at_once(tenant: Tenant) -> None:
    tenant.define("saga", SAGA)
    inst = tenant.start("saga", {"sleep": True})
    tenant.wait_phase(inst, "Waiting", timeout=60)
    tenant.custom.patch_namespaced_custom_object(
        GROUP, VERSION, tenant.ns, "workflowinstances", inst, {"spec": {"terminate": True}}
    )
    done = tenant.wait_phase(inst, "Terminated", timeout=60)
    assert "compensation" not in names(done)


def test_a_rollback_that_fails_once_then_succeeds(tenant: Tenant) -> None:
    tenant.define("flaky-refund", FLAKY_ROLLBACK)
    inst = tenant.start("flaky-refund", {"failures": 1})
    done = tenant.wait_phase(inst, "Errored", "RollbackFailed", timeout=60)
    assert done["phase"] == "Errored", done.get("error")
    refund = step(done, "rollback:charge")
    assert refund["state"] == "Complete" and refund["attempts"] == 2
    assert refund["failures"][0]["name"] == "ConnectionError"  # type: ignore[index]
    assert refund["output"] == {"refunded": 42, "calls": 2}
    assert names(done)[-1] == "rollback:reserve"


def test_a_rollback_that_always_fails_ends_rollback_failed_and_retry_finishes_it(
    tenant: Tenant, kubeconfig: Path
) -> None:
    tenant.define("flaky-refund", FLAKY_ROLLBACK)
    inst = tenant.start("flaky-refund", {"failures": 2})  # both attempts of its policy fail
    failed = tenant.wait_phase(inst, "RollbackFailed", "Errored", timeout=60)
    assert failed["phase"] == "RollbackFailed"
    assert failed["error"]["step"] == "rollback:charge"
    assert failed["error"]["name"] == "ConnectionError"
    assert "rollback:reserve" not in names(failed)  # the chain stopped there
    ready = next(c for c in failed["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "RollbackFailed"
    status = cli(kubeconfig, "-n", tenant.ns, "status", inst, "--watch", check=False)
    assert status.returncode == 1 and "tenantflow retry" in status.stdout  # a CI job can gate
    cli(kubeconfig, "-n", tenant.ns, "retry", inst, "--reason", "refund service is back")
    done = tenant.wait_phase(inst, "Errored", timeout=60)
    assert done["error"]["step"] == "ship"  # it ends as its failure said, all rolled back
    assert names(done)[-2:] == ["rollback:charge", "rollback:reserve"]
    assert step(done, "rollback:charge")["output"] == {"refunded": 42, "calls": 3}
    assert [s["name"] for s in done["steps"]].count("ship") == 1  # nothing ran forward
