"""Local testing for workflow authors: no cluster, a virtual clock, the real engine.

    env = WorkflowTestEnv(workflows={"build": build_source})  # what step.child may start
    result = await env.run(source_or_callable, params={...},
                           events=[(3600, "approved", {"by": "bob"})])
    result.phase, result.output, result.error, result.steps, result.children

Time skips: when every instance waits, the clock jumps to the next wake-up or scheduled
event, so a 30-day sleep takes milliseconds. Each wake-up is a fresh replay over the
journal, exactly as in the cluster. Children (`step.child`) run beside their parent on
the same clock, with the names, results and errors they get in the cluster; a parent
that finishes terminates the children it still awaited.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tenantflow.engine import Complete, EngineLimits, Errored, StepDefaults, Waiting, Yielded
from tenantflow.engine.children import ChildResult, ChildStart
from tenantflow.engine.errors import EngineError
from tenantflow.engine.executor import advance
from tenantflow.engine.journal import StepRecord, dump
from tenantflow.engine.loader import WorkflowFn, check, load
from tenantflow.engine.state import InboxEvent
from tenantflow.storage.database import TenantDatabase

ScheduledEvent = tuple[float, str, Any]  # (seconds after start, type, payload)
_EPOCH = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


class MemoryOutputStore:
    """Holds outputs over the inline cap, like the tenant store does in the cluster."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> str:
        ref = f"mem:{len(self.blobs)}:{key}"
        self.blobs[ref] = data
        return ref

    def get(self, ref: str) -> bytes:
        return self.blobs[ref]


@dataclass
class TestResult:
    """Same shapes as WorkflowInstance.status: phase, output, error, steps (dicts)."""

    __test__ = False  # not a pytest test class

    phase: str
    output: Any = None
    error: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    waiting_for: dict[str, Any] | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    advances: int = 0
    elapsed: dt.timedelta = dt.timedelta(0)
    children: dict[str, TestResult] = field(default_factory=dict)  # by child instance name

    def step(self, name: str) -> dict[str, Any]:
        return next(s for s in self.steps if s["name"] == name)


class VirtualClock:
    def __init__(self, start: dt.datetime = _EPOCH) -> None:
        self.start = self.current = start

    def now(self) -> dt.datetime:
        return self.current

    def skip_to(self, when: dt.datetime) -> None:
        self.current = max(self.current, when)


Workflow = str | Callable[..., Any]
Schedule = list[tuple[dt.datetime, str, Any]]


@dataclass
class _Run:
    """One instance on the virtual clock: its journal and how its last advance ended."""

    fn: WorkflowFn | None  # None: its definition could not be loaded (`failure` says why)
    params: Any
    instance_id: str
    started: dt.datetime
    schedule: Schedule = field(default_factory=list)
    failure: dict[str, Any] | None = None
    journal: list[StepRecord] = field(default_factory=list)
    outcome: Complete | Errored | Waiting | Yielded | None = None
    terminated: bool = False
    advanced_at: dt.datetime | None = None
    awaits: dict[str, str] = field(default_factory=dict)  # child name -> its step here
    child_changed: bool = False
    result: TestResult = field(default_factory=lambda: TestResult(phase="Queued"))

    @property
    def finished(self) -> bool:
        return self.terminated or isinstance(self.outcome, Complete | Errored)

    def wake_times(self) -> list[dt.datetime]:
        """When it has something new: its wake-up, or an awaited event's arrival."""
        outcome = self.outcome
        if not isinstance(outcome, Waiting):
            return []
        arrivals = [
            at
            for at, t, _ in self.schedule
            if t in outcome.event_types and (self.advanced_at is None or at > self.advanced_at)
        ]
        return [*arrivals, *([outcome.wake_at] if outcome.wake_at else [])]

    def ready(self, now: dt.datetime) -> bool:
        if self.finished:
            return False
        if self.outcome is None or isinstance(self.outcome, Yielded) or self.child_changed:
            return True
        return any(at <= now for at in self.wake_times())


class WorkflowTestEnv:
    """Runs a workflow to completion (or until nothing more can happen) on a virtual clock."""

    __test__ = False

    def __init__(
        self,
        *,
        start: dt.datetime = _EPOCH,
        defaults: StepDefaults | None = None,
        limits: EngineLimits | None = None,
        tenant: str = "test",
        db: Any = None,
        max_advances: int = 10_000,
        workflows: dict[str, Workflow] | None = None,
    ) -> None:
        """`workflows`: the definitions `step.child` may start, by name (source or callable)."""
        self.clock = VirtualClock(start)
        self.defaults = defaults or StepDefaults()
        self.limits = limits or EngineLimits()
        self.tenant = tenant
        self.db = db if db is not None else TenantDatabase()
        self.outputs = MemoryOutputStore()
        self.max_advances = max_advances
        self.workflows = dict(workflows or {})

    async def run(
        self,
        workflow: Workflow,
        params: Any = None,
        events: Sequence[ScheduledEvent] = (),
        **options: Any,
    ) -> TestResult:
        """Run to the end on the virtual clock (in a worker thread: each wake-up is a
        replay in an event loop of its own). Options: entrypoint, instance_id."""
        return await asyncio.to_thread(self.run_sync, workflow, params, events, **options)

    def run_sync(
        self,
        workflow: Workflow,
        params: Any = None,
        events: Sequence[ScheduledEvent] = (),
        *,
        entrypoint: str = "run",
        instance_id: str = "test-instance",
    ) -> TestResult:
        """`run` for code that is not async (or is already inside a running loop's thread)."""
        started = self.clock.now()
        root = self._run_of(workflow, params, instance_id, entrypoint)
        root.schedule = sorted(
            ((started + dt.timedelta(seconds=s), t, p) for s, t, p in events), key=lambda e: e[0]
        )
        runs = {instance_id: root}
        advances = 0
        while True:
            ready = [r for r in runs.values() if r.ready(self.clock.now())]
            for run in ready:
                advances += 1
                if advances > self.max_advances:
                    raise RuntimeError(
                        f"workflow did not settle within {self.max_advances} advances"
                    )
                self._advance(run, runs)
            if root.finished:
                return root.result
            if ready:
                continue
            wakes = [at for r in runs.values() if not r.finished for at in r.wake_times()]
            if not wakes:
                return root.result  # Waiting, and nothing scheduled can wake it
            self.clock.skip_to(min(wakes))

    def _run_of(
        self, workflow: Workflow | None, params: Any, instance_id: str, entrypoint: str = "run"
    ) -> _Run:
        run = _Run(fn=None, params=params, instance_id=instance_id, started=self.clock.now())
        if workflow is None:
            run.failure = {
                "name": "DefinitionNotFound",
                "message": "no such workflow in WorkflowTestEnv(workflows=...)",
            }
            return run
        try:
            run.fn = (
                load(workflow, entrypoint)
                if isinstance(workflow, str)
                else check(workflow, entrypoint)
            )
        except EngineError as exc:
            run.failure = {"name": exc.reason, "message": str(exc)}
        return run

    def _advance(self, run: _Run, runs: dict[str, _Run]) -> None:
        """One advance of `run`; then its new children join, or its children are ended."""
        now = self.clock.now()
        result = run.result
        result.advances += 1
        if run.fn is None:
            run.outcome = Errored(run.failure or {})
            result.phase, result.error = "Errored", run.outcome.error
            self._finished(run, runs)
            return
        finished = {
            step: ChildResult(r.phase, r.output, None, r.error)
            for name, step in run.awaits.items()
            if runs[name].finished
            for r in (runs[name].result,)
        }
        out = advance(
            run.fn,
            journal=run.journal,
            params=run.params,
            instance_id=run.instance_id,
            started_at=run.started,
            inbox=[InboxEvent(t, p, at) for at, t, p in run.schedule if at <= now],
            now=self.clock.now,
            tenant=self.tenant,
            db=self.db,
            defaults=self.defaults,
            limits=self.limits,
            offload=self.outputs,
            children=finished,
        )
        run.journal, run.outcome, run.advanced_at, run.child_changed = (
            out.journal,
            out.outcome,
            now,
            False,
        )
        result.steps, result.elapsed = dump(out.journal), now - run.started
        result.logs.extend(out.logs)
        outcome = out.outcome
        if isinstance(outcome, Complete):
            result.phase = "Complete"
            result.output = (
                outcome.output if outcome.output_ref is None else self._load(outcome.output_ref)
            )
        elif isinstance(outcome, Errored):
            result.phase, result.error = "Errored", outcome.error
        elif isinstance(outcome, Waiting):
            result.phase, result.waiting_for = "Waiting", outcome.waiting_for
            for start in outcome.children:
                self._start(run, start, runs)
        else:
            result.phase = "Running"
        if run.finished:
            self._finished(run, runs)

    def _start(self, parent: _Run, start: ChildStart, runs: dict[str, _Run]) -> None:
        parent.awaits[start.name] = start.step
        if start.name not in runs:
            child = self._run_of(self.workflows.get(start.definition), start.params, start.name)
            runs[start.name] = child
            parent.result.children[start.name] = child.result

    def _finished(self, run: _Run, runs: dict[str, _Run]) -> None:
        """Wake the parents that await `run`; terminate the children `run` still awaited."""
        for other in runs.values():
            if run.instance_id in other.awaits:
                other.child_changed = True
        for name in run.awaits:
            child = runs[name]
            if not child.finished:
                child.terminated, child.result.phase = True, "Terminated"
                self._finished(child, runs)

    def _load(self, ref: str) -> Any:
        import json

        return json.loads(self.outputs.get(ref))
