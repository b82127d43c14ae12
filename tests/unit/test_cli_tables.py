"""What the CLI prints: `tenantflow schedules` shows the CRD's printer columns (what
`kubectl get wfs` shows), a missing value as `<none>`, a date as its age; `tenantflow
status` of a Queued instance says why it is queued, not `revision None`."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import pytest

from tenantflow.api.crd import kind_named
from tenantflow.cli import schedule_cmds, workflow_cmds
from tenantflow.cli.common import Env
from tenantflow.durations import format_time, human_age
from tenantflow.kube.client import Kube
from tenantflow.vocabulary import API_VERSION, SCHEDULE
from tenantflow_dev.fake_kube import FakeKube

pytestmark = pytest.mark.unit
NS = "tenant-acme"


def schedule(name: str, status: dict[str, Any] | None) -> dict[str, Any]:
    created = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    return {
        "apiVersion": API_VERSION,
        "kind": SCHEDULE,
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": format_time(created)},
        "spec": {
            "schedule": "0 2 * * *",
            "timeZone": "Europe/Paris",
            "workflowRef": {"name": "ci"},
            "overlapPolicy": "Skip",
            "suspend": False,
        },
        **({"status": status} if status is not None else {}),
    }


async def test_tenantflow_schedules_prints_the_columns_of_kubectl_get_wfs() -> None:
    kube = FakeKube()
    last = format_time(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30))
    kube.put(
        schedule(
            "nightly",
            {"lastScheduleTime": last, "nextRunTimes": ["2030-01-02T01:00:00Z"], "activeCount": 1},
        )
    )
    kube.put(schedule("new", None))
    lines = (await schedule_cmds.schedules(Env(cast(Kube, kube), NS))).text.splitlines()
    columns = kind_named(SCHEDULE).columns
    assert lines[0].split() == ["NAME", *(name.upper() for name, _, _ in columns)]
    assert lines[1].split() == [
        *("new", "0", "2", "*", "*", "*", "Europe/Paris", "ci", "Skip", "false"),
        *("<none>", "<none>", "<none>", "3h"),
    ]
    assert lines[2].split() == [
        *("nightly", "0", "2", "*", "*", "*", "Europe/Paris", "ci", "Skip", "false"),
        *("30m", "2030-01-02T01:00:00Z", "1", "3h"),
    ]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-3, "0s"),
        (90, "90s"),
        (400, "6m40s"),
        (600, "10m"),
        (4 * 3600 + 60, "4h1m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 7200, "3d2h"),
        (40 * 86400, "40d"),
        (800 * 86400, "2y70d"),
    ],
)
def test_ages_read_as_kubectl_prints_them(seconds: float, shown: str) -> None:
    assert human_age(seconds) == shown


def test_status_of_a_queued_instance_says_why_not_revision_none() -> None:
    """A revision is pinned when the instance starts: a Queued one has none to print."""
    queued = {
        "metadata": {"name": "build-1", "namespace": NS},
        "spec": {"workflowRef": {"name": "ci"}},
        "status": {
            "phase": "Queued",
            "conditions": [
                {
                    "type": "Admitted",
                    "status": "False",
                    "reason": "ConcurrencyLimit",
                    "message": "2 active",
                }
            ],
        },
    }
    shown = workflow_cmds._status_view(queued)["table"]
    assert "None" not in shown
    assert "Workflow:  ci (no revision yet)" in shown
    assert "Queued:    ConcurrencyLimit: 2 active" in shown
    started = {**queued, "status": {"phase": "Running", "revision": 3}}
    assert "Workflow:  ci revision 3" in workflow_cmds._status_view(started)["table"]
