"""WorkflowSchedules on the dev cluster: runs start at their times and are owned by the
schedule, pause and resume from the CLI, Skip while a run is active then CancelOther,
and the times missed while the operator was down caught up within the window."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from conftest import OperatorProcess, wait_for
from e2e.conftest import GROUP, VERSION, Tenant, cli
from e2e.test_history import ask
from tenantflow.durations import parse_time

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUICK = """
async def run(event, step, env):
    return await step.do("hello", lambda: "hello " + event["payload"]["who"])
"""

LONG = """
async def run(event, step, env):
    await step.sleep("long", "1h")
"""


@pytest.fixture(scope="module")
def scheduled(tenant: Tenant) -> Tenant:
    return tenant.define_all(quick=QUICK, long=LONG)


def schedule(t: Tenant, name: str, workflow: str, **spec: Any) -> None:
    t.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        t.ns,
        "workflowschedules",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkflowSchedule",
            "metadata": {"name": name},
            "spec": {"workflowRef": {"name": workflow}, "params": {"who": name}, **spec},
        },
    )


def sched_status(t: Tenant, name: str) -> dict[str, Any]:
    body = t.custom.get_namespaced_custom_object(GROUP, VERSION, t.ns, "workflowschedules", name)
    return dict(body.get("status") or {})


def runs(t: Tenant, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = t.custom.list_namespaced_custom_object(
        GROUP, VERSION, t.ns, "workflowinstances", label_selector=f"tenantflow.dev/schedule={name}"
    )["items"]
    return items


def patch(t: Tenant, name: str, spec: dict[str, Any]) -> None:
    t.custom.patch_namespaced_custom_object(
        GROUP, VERSION, t.ns, "workflowschedules", name, {"spec": spec}
    )


def test_runs_start_on_time_owned_by_the_schedule_and_pause_from_the_cli(
    scheduled: Tenant, kubeconfig: Path
) -> None:
    schedule(scheduled, "every3s", "quick", schedule="@every 3s", successfulRunsHistoryLimit=50)
    wait_for(lambda: sched_status(scheduled, "every3s").get("runsStarted", 0) >= 2, "2 runs", 30)
    first = sorted(runs(scheduled, "every3s"), key=lambda r: r["metadata"]["name"])[0]
    name = first["metadata"]["name"]
    assert first["metadata"]["ownerReferences"][0]["kind"] == "WorkflowSchedule"
    at = parse_time(first["metadata"]["annotations"]["tenantflow.dev/scheduled-at"])
    assert at.second % 3 == 0 and name == f"every3s-{int(at.timestamp())}"
    assert scheduled.wait_phase(name, "Complete", timeout=60)["output"] == "hello every3s"
    st = sched_status(scheduled, "every3s")
    assert parse_time(st["nextRunTimes"][0]).second % 3 == 0
    listed = cli(kubeconfig, "-n", scheduled.ns, "schedules").stdout
    assert "every3s" in listed and "@every 3s" in listed
    cli(kubeconfig, "-n", scheduled.ns, "schedules", "pause", "every3s")
    wait_for(
        lambda: any(
            c["reason"] == "Suspended"
            for c in sched_status(scheduled, "every3s").get("conditions", [])
        ),
        "paused",
        30,
    )
    paused = sched_status(scheduled, "every3s")["runsStarted"]
    time.sleep(7)  # two scheduled times pass
    assert sched_status(scheduled, "every3s")["runsStarted"] == paused
    cli(kubeconfig, "-n", scheduled.ns, "schedules", "resume", "every3s")
    wait_for(
        lambda: sched_status(scheduled, "every3s")["runsStarted"] > paused,
        "a run after resume",
        30,
    )
    patch(scheduled, "every3s", {"suspend": True})  # quiet for the rest of the module


def test_skip_while_a_run_is_active_then_cancel_other(scheduled: Tenant) -> None:
    schedule(scheduled, "overlap", "long", schedule="@every 2s")
    wait_for(lambda: sched_status(scheduled, "overlap").get("runsSkipped", 0) >= 2, "skips", 30)
    (only,) = runs(scheduled, "overlap")
    assert scheduled.status(only["metadata"]["name"])["phase"] == "Waiting"
    patch(scheduled, "overlap", {"overlapPolicy": "CancelOther"})
    scheduled.wait_phase(only["metadata"]["name"], "Terminated", timeout=30)
    wait_for(lambda: len(runs(scheduled, "overlap")) >= 2, "the replacing run", 30)
    patch(scheduled, "overlap", {"suspend": True})


def test_times_missed_while_the_operator_was_down_are_caught_up(
    scheduled: Tenant, operator_process: OperatorProcess
) -> None:
    schedule(
        scheduled,
        "catchup",
        "quick",
        schedule="@every 2s",
        overlapPolicy="Allow",
        catchupWindow="1m",
        successfulRunsHistoryLimit=100,
    )
    wait_for(lambda: sched_status(scheduled, "catchup").get("runsStarted", 0) >= 1, "a run", 30)
    operator_process.kill()
    down = time.time()
    time.sleep(8)
    operator_process.start()
    up = time.time()
    wait_for(
        lambda: (
            len(
                [
                    r
                    for r in runs(scheduled, "catchup")
                    if down
                    < parse_time(
                        r["metadata"]["annotations"]["tenantflow.dev/scheduled-at"]
                    ).timestamp()
                    < up - 2
                ]
            )
            >= 3
        ),
        "the runs of the times the operator missed",
        60,
    )
    patch(scheduled, "catchup", {"suspend": True})


def test_runs_beyond_the_history_limit_are_archived_then_deleted(
    scheduled: Tenant, kubeconfig: Path
) -> None:
    """successfulRunsHistoryLimit as CronJob's: the newest run stays an object, the older
    ones leave the control plane for the tenant's history (archived, then deleted)."""
    schedule(scheduled, "keep1", "quick", schedule="@every 2s", successfulRunsHistoryLimit=1)
    wait_for(lambda: sched_status(scheduled, "keep1").get("runsStarted", 0) >= 4, "4 runs", 60)
    patch(scheduled, "keep1", {"suspend": True})
    wait_for(
        lambda: any(
            c["reason"] == "Suspended"
            for c in sched_status(scheduled, "keep1").get("conditions", [])
        ),
        "suspended",
        30,
    )

    def archived() -> list[str]:
        found = ask(kubeconfig, scheduled.name, {"op": "search", "definition": "quick"})
        return [i["name"] for i in found["items"] if i["name"].startswith("keep1-")]

    started = sched_status(scheduled, "keep1")["runsStarted"]
    wait_for(
        lambda: len(runs(scheduled, "keep1")) == 1 and len(archived()) == started - 1,
        "every run but the newest archived and deleted",
        90,
    )
    (newest,) = runs(scheduled, "keep1")
    assert newest["metadata"]["name"] not in archived(), "the newest run stays an object"
