"""WorkflowSchedule controller: at each scheduled time, start a run (a WorkflowInstance
owned by the schedule) as `lifecycle.schedule.plan` decides, and say what comes next.

One reconcile reads the schedule and its runs (by label), plans, cancels and starts, and
writes the status once; it runs again at the next scheduled time (the work queue's
run-later) and whenever one of its runs finishes (BufferOne's waiting run, `active`).
The runs are ordinary instances: the Tenant's start rate and concurrency apply to them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tenantflow import conditions
from tenantflow.api.schedule import WorkflowSchedule
from tenantflow.controllers.ownership import Gate, sole_replica
from tenantflow.controllers.persist import Persist, unchanged_spec
from tenantflow.controllers.work_queue import WorkQueue, namespace_in_key
from tenantflow.durations import format_time, parse_duration, parse_time
from tenantflow.kube.client import ApiException, KubeApi, message
from tenantflow.kube.events import EventRecorder
from tenantflow.lifecycle.schedule import (
    Cron,
    FinishedRun,
    Plan,
    ScheduleError,
    beyond_history,
    plan,
    run_name,
)
from tenantflow.observability import metrics
from tenantflow.observability.logging import get_logger
from tenantflow.owners import controlled_by, controller_ref
from tenantflow.vocabulary import (
    API_VERSION,
    ARCHIVE_NOW_ANNOTATION,
    FINISHED,
    INSTANCE,
    SCHEDULE,
    SCHEDULE_LABEL,
    SCHEDULED_AT_ANNOTATION,
    ObjectKey,
    object_key,
    split_key,
    tenant_of,
)

log = get_logger("tenantflow.schedule")
START_RETRY = 10.0  # seconds before a run the API refused for now is tried again


@dataclass
class ScheduleController:
    kube: KubeApi
    # whether this replica may work on a namespace now (controllers/ownership.py): asked
    # by the queue before every reconcile (a schedule's next time waits out a late lease)
    # and by the persist before the status write
    gate: Gate = sole_replica
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    recorder: EventRecorder | None = None  # the operator's one recorder (else its own)

    def __post_init__(self) -> None:
        self.events = self.recorder or EventRecorder(self.kube)
        self.queue: WorkQueue[ObjectKey] = WorkQueue(
            self.reconcile,
            namespace_of=namespace_in_key,
            workers=4,
            name="schedules",
            gate=lambda ns: self.gate(ns),
        )
        self.persist = Persist(self.kube, self.queue.gate)

    def on_event(self, kind: str, namespace: str, name: str) -> None:
        key = object_key(namespace, name)
        if kind == "DELETED":
            self.queue.cancel_later(key)
        else:
            self.queue.request(key)

    def run_finished(self, namespace: str, schedule: str) -> None:
        """A run of a schedule finished: its `active` shrinks, a buffered run may start."""
        self.queue.request(object_key(namespace, schedule))

    async def reconcile(self, key: ObjectKey) -> None:
        ns, name = split_key(key)
        body = await self.kube.get(API_VERSION, SCHEDULE, name, ns)
        if body is None:
            self.queue.cancel_later(key)
            return
        status: dict[str, Any] = dict(body.get("status") or {})
        try:
            sched = WorkflowSchedule.model_validate(body)
            cron = Cron.parse(sched.spec.schedule, sched.spec.time_zone)
        except (ScheduleError, ValidationError) as exc:
            await self._stalled(body, status, "InvalidSchedule", str(exc))
            return
        runs = await self._runs(body)
        active = sorted(n for n, b in runs.items() if _phase(b) not in FINISHED)
        spec, buffered, now = sched.spec, status.get("buffered"), self.now()
        cursor = status.get("evaluatedUntil") or body["metadata"]["creationTimestamp"]
        p = plan(
            cron,
            schedule=name,
            policy=spec.overlap_policy,
            catchup=parse_duration(spec.catchup_window, field="spec.catchupWindow"),
            suspend=spec.suspend,
            cursor=parse_time(cursor),
            buffered=parse_time(buffered) if buffered else None,
            active=active,
            now=now,
        )
        for run in p.terminate:
            await self._terminate(ns, run)
        await self._archive_beyond_history(sched, runs)
        started, failure = [], None
        for at in p.start:
            failure = await self._start(body, sched, at)
            if failure is not None:  # decided up to just before it: tried again
                p.evaluated_until = at - dt.timedelta(microseconds=1)
                break
            started.append(at)
        active = sorted({*active, *(run_name(name, at) for at in started)} - set(p.terminate))
        update = _status(body, status, sched, p, started, active, failure)
        if await self.persist.status(SCHEDULE, body, unchanged_spec(body, update)) is None:
            self.queue.request(key)  # runs started are found again (their names are fixed)
            return
        await self._tell(body, started, p, failure)
        if failure:
            self.queue.request_after(key, START_RETRY)
        elif p.next_times:
            self.queue.request_after(key, p.next_times[0])

    async def _runs(self, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The schedule's runs, by name (those it controls)."""
        meta = body["metadata"]
        items = await self.kube.list(
            API_VERSION,
            INSTANCE,
            namespace=meta["namespace"],
            label_selector=f"{SCHEDULE_LABEL}={meta['name']}",
        )
        return {b["metadata"]["name"]: b for b in items if controlled_by(b, meta.get("uid"))}

    async def _start(
        self, body: dict[str, Any], sched: WorkflowSchedule, at: dt.datetime
    ) -> str | None:
        """Create the run of `at`; None when it exists now, else why it could not."""
        meta = body["metadata"]
        run = {
            "apiVersion": API_VERSION,
            "kind": INSTANCE,
            "metadata": {
                "name": run_name(meta["name"], at),
                "namespace": meta["namespace"],
                "labels": {SCHEDULE_LABEL: meta["name"]},
                "annotations": {SCHEDULED_AT_ANNOTATION: format_time(at)},
                "ownerReferences": [controller_ref(SCHEDULE, meta["name"], meta.get("uid"))],
            },
            "spec": {
                "workflowRef": sched.spec.workflow_ref.wire(),
                "params": sched.spec.params,
            },
        }
        try:
            await self.kube.create(run)
        except ApiException as exc:
            if exc.status == 409:
                return None  # started before (a crash before the status write)
            log.warning("scheduled run not started", schedule=meta["name"], status=exc.status)
            return f"the run of {format_time(at)} was not created: {message(exc)[:512]}"
        return None

    async def _archive_beyond_history(
        self, sched: WorkflowSchedule, runs: dict[str, dict[str, Any]]
    ) -> None:
        """Finished runs past the history limits are handed to the instance controller
        to archive and delete now: it alone deletes an instance, and only once its
        archive record is stored (controllers/instances/archive.py)."""
        finished = [
            FinishedRun(name, phase, _annotations(b).get(SCHEDULED_AT_ANNOTATION, ""))
            for name, b in runs.items()
            if (phase := _phase(b)) in FINISHED and ARCHIVE_NOW_ANNOTATION not in _annotations(b)
        ]
        spec, ns = sched.spec, sched.metadata.namespace or ""
        for run in beyond_history(
            finished, spec.successful_runs_history_limit, spec.failed_runs_history_limit
        ):
            why = f"beyond the history limits of schedule {sched.metadata.name}"
            try:
                await self.kube.patch(
                    API_VERSION,
                    INSTANCE,
                    run.name,
                    ns,
                    {"metadata": {"annotations": {ARCHIVE_NOW_ANNOTATION: why}}},
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise

    async def _terminate(self, namespace: str, run: str) -> None:
        try:
            await self.kube.patch(
                API_VERSION, INSTANCE, run, namespace, {"spec": {"terminate": True}}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def _stalled(
        self, body: dict[str, Any], status: dict[str, Any], reason: str, message: str
    ) -> None:
        meta = body["metadata"]
        update = {
            "observedGeneration": meta.get("generation"),
            "nextRunTimes": [],
            "conditions": conditions.merge(
                status.get("conditions"),
                conditions.health(False, reason, message[:1024], stalled=True),
                generation=meta.get("generation"),
            ),
        }
        if await self.persist.status(SCHEDULE, body, unchanged_spec(body, update)) is None:
            self.queue.request(object_key(meta["namespace"], meta["name"]))
            return
        if status.get("conditions") != update["conditions"]:
            await self.events.post(body, "Warning", reason, message)

    async def _tell(
        self, body: dict[str, Any], started: list[dt.datetime], p: Plan, failure: str | None
    ) -> None:
        """Events and metrics for what one reconcile did."""
        name, tenant = body["metadata"]["name"], tenant_of(body["metadata"]["namespace"])
        told = (
            (
                "started",
                len(started),
                "Normal",
                "RunStarted",
                "started " + ", ".join(run_name(name, at) for at in started),
            ),
            (
                "skipped",
                p.skipped,
                "Normal",
                "RunSkipped",
                f"{p.skipped} scheduled time(s) skipped: a run was active (overlapPolicy)",
            ),
            (
                "missed",
                p.missed,
                "Warning",
                "MissedRuns",
                f"{p.missed} scheduled time(s) older than spec.catchupWindow were not run",
            ),
            (
                "cancelled",
                len(p.terminate),
                "Normal",
                "RunCancelled",
                f"terminated {', '.join(p.terminate)} (overlapPolicy CancelOther)",
            ),
        )
        for result, count, kind, reason, said in told:
            if count:
                metrics.SCHEDULE_RUNS.labels(tenant=tenant, result=result).inc(count)
                await self.events.post(body, kind, reason, said)
        if failure:
            await self.events.post(body, "Warning", "StartFailed", failure)


def _status(
    body: dict[str, Any],
    status: dict[str, Any],
    sched: WorkflowSchedule,
    p: Plan,
    started: list[dt.datetime],
    active: list[str],
    failure: str | None,
) -> dict[str, Any]:
    """The status a reconcile writes (merge patch: None removes a field)."""
    meta, spec = body["metadata"], sched.spec
    update: dict[str, Any] = {
        "observedGeneration": meta.get("generation"),
        "nextRunTimes": [format_time(t) for t in p.next_times],
        "evaluatedUntil": format_time(p.evaluated_until) if p.evaluated_until else None,
        "active": active,
        "activeCount": len(active),
        "buffered": format_time(p.buffered) if p.buffered else None,
        "runsStarted": int(status.get("runsStarted") or 0) + len(started),
        "runsSkipped": int(status.get("runsSkipped") or 0) + p.skipped,
        "missedRuns": int(status.get("missedRuns") or 0) + p.missed,
    }
    if started:
        update["lastScheduleTime"] = format_time(started[-1])
        update["lastRun"] = run_name(meta["name"], started[-1])
    if failure:
        health = conditions.health(False, "StartFailed", failure, reconciling=True)
    elif spec.suspend:
        health = conditions.health(True, "Suspended", "spec.suspend is true: no runs start")
    else:
        next_run = update["nextRunTimes"][0] if p.next_times else "never"
        health = conditions.health(True, "Scheduled", f"next run at {next_run}")
    update["conditions"] = conditions.merge(
        status.get("conditions"), health, generation=meta.get("generation")
    )
    return update


def _annotations(body: dict[str, Any]) -> dict[str, str]:
    annotations: dict[str, str] = body["metadata"].get("annotations") or {}
    return annotations


def _phase(body: dict[str, Any]) -> str | None:
    phase: str | None = (body.get("status") or {}).get("phase")
    return phase
