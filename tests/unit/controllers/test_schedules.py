"""The schedule controller against the in-memory API, on a clock the test moves: runs
created owned by the schedule, a crash between start and status write starting nothing
twice, BufferOne's waiting run started when the active one ends, a bad spec Stalled."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tenantflow.controllers.ownership import Verdict
from tenantflow.controllers.schedules import ScheduleController
from tenantflow.durations import parse_time
from tenantflow.owners import controller_ref
from tenantflow.vocabulary import (
    API_VERSION,
    ARCHIVE_NOW_ANNOTATION,
    INSTANCE,
    SCHEDULE,
    SCHEDULE_LABEL,
    SCHEDULED_AT_ANNOTATION,
)
from tenantflow_dev.fake_kube import FakeKube

NS = "tenant-acme"
KEY = f"{NS}/nightly"


class Clock:
    def __init__(self, now: str) -> None:
        self.current = parse_time(now)

    def __call__(self) -> dt.datetime:
        return self.current

    def set(self, now: str) -> None:
        self.current = parse_time(now)


def setup(policy: str = "Skip", **spec: Any) -> tuple[FakeKube, ScheduleController, Clock]:
    kube, clock = FakeKube(), Clock("2030-01-01T00:30:00Z")
    kube.put(
        {
            "apiVersion": API_VERSION,
            "kind": SCHEDULE,
            "metadata": {
                "name": "nightly",
                "namespace": NS,
                "creationTimestamp": "2030-01-01T00:10:00Z",
            },
            "spec": {
                "schedule": "0 * * * *",
                "workflowRef": {"name": "build"},
                "params": {"branch": "main"},
                "overlapPolicy": policy,
                **spec,
            },
        }
    )
    return kube, ScheduleController(kube, now=clock), clock


def runs(kube: FakeKube) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o for (_, kind, _, _), o in kube.objects.items() if kind == INSTANCE
    }


def status(kube: FakeKube) -> dict[str, Any]:
    body = kube.read(API_VERSION, SCHEDULE, "nightly", NS)
    assert body is not None
    return dict(body["status"])


@pytest.mark.unit
async def test_each_scheduled_time_starts_one_owned_run_once() -> None:
    kube, ctl, clock = setup()
    await ctl.reconcile(KEY)
    assert runs(kube) == {}
    assert status(kube)["nextRunTimes"][0] == "2030-01-01T01:00:00Z"
    clock.set("2030-01-01T01:00:02Z")
    await ctl.reconcile(KEY)
    ((name, run),) = runs(kube).items()
    assert name == f"nightly-{int(parse_time('2030-01-01T01:00:00Z').timestamp())}"
    assert run["metadata"]["labels"][SCHEDULE_LABEL] == "nightly"
    assert run["metadata"]["annotations"][SCHEDULED_AT_ANNOTATION] == "2030-01-01T01:00:00Z"
    assert run["metadata"]["ownerReferences"][0]["kind"] == SCHEDULE
    assert run["spec"] == {"workflowRef": {"name": "build"}, "params": {"branch": "main"}}
    st = status(kube)
    assert (st["runsStarted"], st["lastRun"], st["active"]) == (1, name, [name])
    # the status write was lost (a crash): the same time is planned again, nothing new runs
    body = kube.read(API_VERSION, SCHEDULE, "nightly", NS)
    assert body is not None
    body["status"]["evaluatedUntil"] = "2030-01-01T00:59:00Z"
    kube.put(body)
    await ctl.reconcile(KEY)
    assert list(runs(kube)) == [name]


@pytest.mark.unit
async def test_buffer_one_starts_the_waiting_run_when_the_active_one_finishes() -> None:
    kube, ctl, clock = setup("BufferOne")
    clock.set("2030-01-01T01:00:02Z")
    await ctl.reconcile(KEY)
    clock.set("2030-01-01T02:00:02Z")
    await ctl.reconcile(KEY)
    assert len(runs(kube)) == 1 and status(kube)["buffered"] == "2030-01-01T02:00:00Z"
    (first,) = runs(kube)
    await kube.patch(
        API_VERSION, INSTANCE, first, NS, {"status": {"phase": "Complete"}}, subresource="status"
    )
    clock.set("2030-01-01T02:10:00Z")
    ctl.run_finished(NS, "nightly")  # as the instance controller says
    await ctl.queue.drain()
    assert len(runs(kube)) == 2 and "buffered" not in status(kube)


@pytest.mark.unit
async def test_a_bad_spec_is_stalled_naming_the_field() -> None:
    kube, ctl, _ = setup(timeZone="Nowhere/Else")
    await ctl.reconcile(KEY)
    stalled = next(c for c in status(kube)["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and "spec.timeZone" in stalled["message"]
    assert runs(kube) == {}


@pytest.mark.unit
async def test_a_schedule_found_fenced_waits_and_one_of_another_replica_is_dropped() -> None:
    kube, _, clock = setup()
    verdict = {"now": Verdict.DEFER}  # our shard, our lease late
    ctl = ScheduleController(kube, gate=lambda ns: verdict["now"], now=clock)
    clock.set("2030-01-01T01:00:02Z")
    ctl.queue.request(KEY)
    await ctl.queue.drain()
    assert runs(kube) == {} and ctl.queue.due_at(KEY)  # asked again soon, not forgotten
    verdict["now"] = Verdict.ACT
    ctl.queue.request(KEY)
    await ctl.queue.drain()
    assert len(runs(kube)) == 1
    assert ctl.queue.due_at(KEY) == parse_time("2030-01-01T02:00:00Z")  # its next time
    verdict["now"] = Verdict.DROP  # the shard moved: the other replica has it now
    ctl.queue.request(KEY)
    await ctl.queue.drain()
    assert ctl.queue.due_at(KEY) is None, "nothing of another replica's schedule is kept"


def finished_run(kube: FakeKube, at: str, phase: str) -> str:
    """A run of `nightly` scheduled at `at` that ended in `phase`."""
    name = f"nightly-{int(parse_time(at).timestamp())}"
    kube.put(
        {
            "apiVersion": API_VERSION,
            "kind": INSTANCE,
            "metadata": {
                "name": name,
                "namespace": NS,
                "labels": {SCHEDULE_LABEL: "nightly"},
                "annotations": {SCHEDULED_AT_ANNOTATION: at},
                "ownerReferences": [controller_ref(SCHEDULE, "nightly", "uid-nightly")],
            },
            "spec": {"workflowRef": {"name": "build"}},
            "status": {"phase": phase, "finishedAt": at},
        }
    )
    return name


@pytest.mark.unit
async def test_finished_runs_beyond_the_history_limits_are_handed_over_for_archive() -> None:
    """As CronJob's successful/failedJobsHistoryLimit: the newest runs of each kind stay
    objects; older ones are marked for the instance controller, which alone archives and
    deletes (archive first), so the schedule never deletes a run itself."""
    kube, ctl, _ = setup(successfulRunsHistoryLimit=1, failedRunsHistoryLimit=1)
    old_ok = finished_run(kube, "2030-01-01T00:11:00Z", "Complete")
    new_ok = finished_run(kube, "2030-01-01T00:12:00Z", "Complete")
    old_bad = finished_run(kube, "2030-01-01T00:13:00Z", "Errored")
    new_bad = finished_run(kube, "2030-01-01T00:14:00Z", "Terminated")
    await ctl.reconcile(KEY)
    marked = {
        name
        for name, o in runs(kube).items()
        if ARCHIVE_NOW_ANNOTATION in o["metadata"]["annotations"]
    }
    assert marked == {old_ok, old_bad}
    assert set(runs(kube)) == {old_ok, new_ok, old_bad, new_bad}, "none deleted by the schedule"
