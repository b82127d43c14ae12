"""Local testing for workflow authors: no cluster, a virtual clock, the real engine.

    env = WorkflowTestEnv()
    result = await env.run(source_or_callable, params={...},
                           events=[(3600, "approved", {"by": "bob"})])
    result.phase, result.output, result.error, result.steps

Time skips: when the workflow waits, the clock jumps to its next wake-up or the next
scheduled event, so a 30-day sleep takes milliseconds. Each wake-up is a fresh replay
over the journal, exactly as in the cluster.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tenantflow.engine import Complete, EngineLimits, Errored, StepDefaults, Waiting, Yielded
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

    def step(self, name: str) -> dict[str, Any]:
        return next(s for s in self.steps if s["name"] == name)


class VirtualClock:
    def __init__(self, start: dt.datetime = _EPOCH) -> None:
        self.start = self.current = start

    def now(self) -> dt.datetime:
        return self.current

    def skip_to(self, when: dt.datetime) -> None:
        self.current = max(self.current, when)


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
    ) -> None:
        self.clock = VirtualClock(start)
        self.defaults = defaults or StepDefaults()
        self.limits = limits or EngineLimits()
        self.tenant = tenant
        self.db = db if db is not None else TenantDatabase()
        self.outputs = MemoryOutputStore()
        self.max_advances = max_advances

    async def run(
        self,
        workflow: str | Callable[..., Any],
        params: Any = None,
        events: Sequence[ScheduledEvent] = (),
        **options: Any,
    ) -> TestResult:
        """Run to the end on the virtual clock (in a worker thread: each wake-up is a
        replay in an event loop of its own). Options: entrypoint, instance_id."""
        return await asyncio.to_thread(self.run_sync, workflow, params, events, **options)

    def run_sync(
        self,
        workflow: str | Callable[..., Any],
        params: Any = None,
        events: Sequence[ScheduledEvent] = (),
        *,
        entrypoint: str = "run",
        instance_id: str = "test-instance",
    ) -> TestResult:
        """`run` for code that is not async (or is already inside a running loop's thread)."""
        try:
            fn: WorkflowFn = (
                load(workflow, entrypoint)
                if isinstance(workflow, str)
                else check(workflow, entrypoint)
            )
        except EngineError as exc:
            return TestResult(phase="Errored", error={"name": exc.reason, "message": str(exc)})
        started = self.clock.now()
        schedule = sorted(
            ((started + dt.timedelta(seconds=s), t, p) for s, t, p in events), key=lambda e: e[0]
        )
        journal: list[StepRecord] = []
        logs: list[dict[str, Any]] = []
        for count in range(1, self.max_advances + 1):
            inbox = [InboxEvent(t, p, at) for at, t, p in schedule if at <= self.clock.now()]
            result = advance(
                fn,
                journal=journal,
                params=params,
                instance_id=instance_id,
                started_at=started,
                inbox=inbox,
                now=self.clock.now,
                tenant=self.tenant,
                db=self.db,
                defaults=self.defaults,
                limits=self.limits,
                offload=self.outputs,
            )
            journal, outcome = result.journal, result.outcome
            logs.extend(result.logs)
            done = TestResult(
                phase="",
                steps=dump(journal),
                logs=logs,
                advances=count,
                elapsed=self.clock.now() - started,
            )
            if isinstance(outcome, Complete):
                done.phase = "Complete"
                done.output = (
                    outcome.output if outcome.output_ref is None else self._load(outcome.output_ref)
                )
                return done
            if isinstance(outcome, Errored):
                done.phase, done.error = "Errored", outcome.error
                return done
            if isinstance(outcome, Yielded):
                continue
            assert isinstance(outcome, Waiting)
            wake = self._next_wake(outcome, schedule)
            if wake is None:
                done.phase, done.waiting_for = "Waiting", outcome.waiting_for
                return done
            self.clock.skip_to(wake)
        raise RuntimeError(f"workflow did not settle within {self.max_advances} advances")

    def _next_wake(
        self, outcome: Waiting, schedule: list[tuple[dt.datetime, str, Any]]
    ) -> dt.datetime | None:
        now = self.clock.now()
        upcoming = [at for at, t, _ in schedule if at > now and t in outcome.event_types]
        candidates = [*upcoming, *([outcome.wake_at] if outcome.wake_at else [])]
        return min(candidates) if candidates else None

    def _load(self, ref: str) -> Any:
        import json

        return json.loads(self.outputs.get(ref))
