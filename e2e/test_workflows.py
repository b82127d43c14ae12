"""Workflows end to end: real API server, real operator process, jailed local sandboxes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from conftest import OperatorProcess, wait_for
from e2e.conftest import GROUP, VERSION, Tenant

CI_PIPELINE = """
import asyncio

async def run(event, step, env):
    sha = await step.do("checkout", lambda: event["payload"]["sha"][:7])
    unit, lint = await asyncio.gather(step.do("unit", lambda: 42), step.do("lint", lambda: 0))
    approval = await step.wait_for_event("approval", type="approved", timeout="1h")
    return {"sha": sha, "tests": unit, "warnings": lint, "by": approval["payload"]["by"]}
"""


def test_ci_pipeline_with_parallel_steps_and_an_approval(tenant: Tenant) -> None:
    tenant.define("ci", CI_PIPELINE)
    inst = tenant.start("ci", {"sha": "abcdef123456"})
    waiting = tenant.wait_phase(inst, "Waiting")
    assert waiting["waitingFor"] == {
        "kind": "event",
        "step": "approval",
        "eventType": "approved",
        "until": waiting["waitingFor"]["until"],
    }
    assert [s["name"] for s in waiting["steps"]] == ["checkout", "unit", "lint", "approval"]
    tenant.send_event(inst, "approved", {"by": "bob"})
    done = tenant.wait_phase(inst, "Complete")
    assert done["output"] == {"sha": "abcdef1", "tests": 42, "warnings": 0, "by": "bob"}
    assert done["stepCount"] == 4 and done["revision"] == 1


def test_a_three_second_sleep_wakes_on_time(tenant: Tenant) -> None:
    tenant.define(
        "napper",
        """
        async def run(event, step):
            await step.sleep("nap", "3s")
            return "rested"
    """,
    )
    inst = tenant.start("napper")
    done = tenant.wait_phase(inst, "Complete", timeout=30)
    nap = done["steps"][0]
    slept = (
        dt.datetime.fromisoformat(nap["finishedAt"]) - dt.datetime.fromisoformat(nap["startedAt"])
    ).total_seconds()
    assert 3 <= slept < 8, slept
    assert done["output"] == "rested"


def test_retries_with_backoff_show_in_attempts(tenant: Tenant) -> None:
    tenant.define(
        "flaky",
        """
        from tenantflow.sdk import current_attempt

        async def run(event, step):
            def sometimes():
                if current_attempt() < 3:
                    raise ConnectionError(f"attempt {current_attempt()} failed")
                return current_attempt()
            return await step.do("call", sometimes,
                                 retries={"limit": 4, "delay": "1s", "backoff": "linear"})
    """,
    )
    inst = tenant.start("flaky")
    done = tenant.wait_phase(inst, "Complete", timeout=30)
    call = done["steps"][0]
    assert call["attempts"] == 3 and done["output"] == 3
    took = (
        dt.datetime.fromisoformat(call["finishedAt"]) - dt.datetime.fromisoformat(call["startedAt"])
    ).total_seconds()
    assert took >= 3, "linear backoff: 1 s then 2 s"


def test_tenant_code_that_throws_ends_errored_with_step_and_message(tenant: Tenant) -> None:
    tenant.define(
        "broken",
        """
        async def run(event, step):
            await step.do("parse", lambda: int("not a number"), retries={"limit": 0})
    """,
    )
    inst = tenant.start("broken")
    done = tenant.wait_phase(inst, "Errored")
    assert done["error"]["name"] == "ValueError"
    assert done["error"]["step"] == "parse"
    assert "invalid literal" in done["error"]["message"]
    wait_for(
        lambda: any(
            e.reason == "ValueError" and e.type == "Warning" and "parse" in e.message
            for e in tenant.core.list_namespaced_event(
                tenant.ns, field_selector=f"involvedObject.name={inst}"
            ).items
        ),
        "a Warning event naming the error and step",
        15,
    )


def test_a_journal_the_api_server_refuses_errors_the_instance(tenant: Tenant) -> None:
    """Hostile: tenant code rewrites the journal its answer carries into one the CRD's
    schema refuses (ten kept failures where three are allowed). The instance must end
    Errored, saying why, with its last good journal, not be advanced again and again."""
    tenant.define(
        "forged-journal",
        """
        import sys

        async def run(event, step):
            await step.do("a", lambda: 1)
            wire = sys.modules["tenantflow.engine.wire"]
            real = wire.dump
            def forged(records):
                out = real(records)
                for entry in out:
                    entry["failures"] = [
                        {"attempt": n, "name": "E", "message": "m", "at": "2030-01-01T00:00:00Z"}
                        for n in range(1, 11)
                    ]
                return out
            wire.dump = forged
            return "forged"
    """,
    )
    inst = tenant.start("forged-journal")
    done = tenant.wait_phase(inst, "Errored", "Complete", timeout=60)
    assert done["phase"] == "Errored", done
    assert done["error"]["name"] == "SandboxBadOutput"
    assert "failures" in done["error"]["message"]
    assert all(len(s.get("failures") or []) <= 3 for s in done.get("steps") or [])


def test_a_definition_with_a_syntax_error_is_not_ready(tenant: Tenant) -> None:
    tenant.define("typo", "async def run(event, step)\n    pass\n")

    def condition() -> dict[str, Any] | None:
        d = tenant.custom.get_namespaced_custom_object(
            GROUP, VERSION, tenant.ns, "workflowdefinitions", "typo"
        )
        conds = (d.get("status") or {}).get("conditions") or []
        return conds[0] if conds else None

    ready = wait_for(condition, "Ready condition", 30)
    assert ready["status"] == "False" and ready["reason"] == "SyntaxError"  # type: ignore[index]
    assert "line 1" in ready["message"]  # type: ignore[index]


def test_operator_sigkill_mid_run_loses_nothing(
    tenant: Tenant, operator_process: OperatorProcess
) -> None:
    tenant.define(
        "ledger",
        """
        async def run(event, step, env):
            env.db.execute("CREATE TABLE IF NOT EXISTS runs (step TEXT)")
            for i in range(6):
                def work(i=i):
                    env.db.execute("INSERT INTO runs VALUES (?)", (f"s{i}",))
                    return i
                await step.do(f"s{i}", work)
                await step.sleep(f"pause-{i}", "1s")
            return "done"
    """,
    )
    inst = tenant.start("ledger")
    wait_for(lambda: len(tenant.status(inst).get("steps") or []) >= 4, "a few steps", 30)
    operator_process.kill()
    persisted = {
        s["name"]
        for s in tenant.status(inst)["steps"]
        if s["kind"] == "do" and s["state"] == "Complete"
    }
    operator_process.start()
    done = tenant.wait_phase(inst, "Complete", timeout=60)
    assert done["output"] == "done"
    runs = [r[0] for r in tenant.query("SELECT step FROM runs")]
    for name in persisted:
        assert runs.count(name) == 1, f"{name} ran again after its result was persisted"
    assert set(runs) == {f"s{i}" for i in range(6)}


def test_rollback_pins_new_instances_while_running_ones_keep_theirs(tenant: Tenant) -> None:
    v1 = """
        async def run(event, step):
            got = await step.wait_for_event("go", type="go", timeout="1h")
            return "v1"
    """
    tenant.define("versions", v1)
    tenant.wait_revision("versions", 1)
    old = tenant.start("versions")
    tenant.wait_phase(old, "Waiting")
    tenant.define("versions", v1.replace('"v1"', '"v2"'))
    tenant.wait_revision("versions", 2)
    new = tenant.start("versions")
    tenant.wait_phase(new, "Waiting")
    tenant.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        tenant.ns,
        "workflowdefinitions",
        "versions",
        {"spec": {"pinnedRevision": 1}},
    )
    tenant.wait_revision("versions", 1)
    pinned = tenant.start("versions")
    tenant.wait_phase(pinned, "Waiting")
    for inst in (old, new, pinned):
        tenant.send_event(inst, "go")
    results = {i: tenant.wait_phase(i, "Complete") for i in (old, new, pinned)}
    assert [(results[i]["revision"], results[i]["output"]) for i in (old, new, pinned)] == [
        (1, "v1"),
        (2, "v2"),
        (1, "v1"),
    ]


def test_suspend_resume_and_terminate(tenant: Tenant) -> None:
    tenant.define(
        "long",
        """
        async def run(event, step):
            await step.sleep("a", "2s")
            await step.sleep("b", "1h")
    """,
    )
    inst = tenant.start("long")
    tenant.wait_phase(inst, "Waiting")
    patch = tenant.custom.patch_namespaced_custom_object
    patch(GROUP, VERSION, tenant.ns, "workflowinstances", inst, {"spec": {"suspend": True}})
    tenant.wait_phase(inst, "Paused")
    patch(GROUP, VERSION, tenant.ns, "workflowinstances", inst, {"spec": {"suspend": False}})
    wait_for(lambda: len(tenant.status(inst).get("steps") or []) == 2, "resumed to step b", 30)
    patch(GROUP, VERSION, tenant.ns, "workflowinstances", inst, {"spec": {"terminate": True}})
    assert tenant.wait_phase(inst, "Terminated")["finishedAt"]
