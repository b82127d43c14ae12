"""Property: random workflows crashed at every possible point reach the crash-free result.

A "crash" is either the process dying right after a step callable ran (its result never
persisted), or an advance finishing but its journal never being written. Either way the
next advance starts from the last persisted journal, as the operator does after a restart.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenantflow.engine import Complete, EngineLimits, Errored, StepState, Waiting, Yielded, advance
from tenantflow.engine.state import InboxEvent
from tenantflow.sdk import NonRetryableError, StepError, WaitTimeout, current_attempt

pytestmark = [pytest.mark.unit, pytest.mark.slow]

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


class SimulatedCrash(BaseException):
    """Not an Exception: nothing in the engine or the workflow may swallow it."""


# ---------------------------------------------------------------- random programs
do_op = st.builds(
    lambda fails, final, sync, limit: ("do", fails, final, sync, limit),
    st.integers(0, 3),
    st.booleans(),
    st.booleans(),
    st.integers(0, 3),
)
sleep_op = st.builds(lambda s: ("sleep", s), st.integers(1, 3600))
wait_op = st.builds(lambda t, s: ("wait", t, s), st.sampled_from(["a", "b"]), st.integers(60, 7200))
gather_op = st.builds(
    lambda ops: ("gather", ops),
    st.lists(st.one_of(do_op, sleep_op, wait_op), min_size=2, max_size=3),
)
programs = st.lists(st.one_of(do_op, do_op, sleep_op, wait_op, gather_op), min_size=1, max_size=6)
events = st.lists(
    st.tuples(st.integers(0, 9000), st.sampled_from(["a", "b"]), st.integers(0, 99)), max_size=4
)


@dataclass
class Harness:
    program: list[Any]
    schedule: list[tuple[int, str, int]]
    crash_at_execution: int | None = None
    discard_advance: int | None = None
    executions: int = 0
    advances: int = 0
    persisted: list[Any] = field(default_factory=list)
    now: dt.datetime = T0
    ran_after_persist: list[str] = field(default_factory=list)

    def callable_for(self, name: str, fails: int, final: bool, sync: bool) -> Any:
        def body() -> str:
            self.executions += 1
            if any(r.name == name and r.state is StepState.COMPLETE for r in self.persisted):
                self.ran_after_persist.append(name)
            crash = self.executions == self.crash_at_execution
            attempt = current_attempt()
            if crash:
                raise SimulatedCrash(name)
            if attempt <= fails:
                raise (NonRetryableError if final else RuntimeError)(f"{name} attempt {attempt}")
            return f"{name}@{attempt}"

        async def async_body() -> str:
            return body()

        return body if sync else async_body

    async def interpret(self, ops: list[Any], step: Any, prefix: str, out: list[Any]) -> None:
        for i, op in enumerate(ops):
            name = f"{prefix}{i}"
            out.append(await self.one(op, name, step))

    async def one(self, op: Any, name: str, step: Any) -> Any:
        import asyncio

        try:
            if op[0] == "do":
                _, fails, final, sync, limit = op
                return await step.do(
                    name,
                    self.callable_for(name, fails, final, sync),
                    retries={"limit": limit, "delay": "10s"},
                )
            if op[0] == "sleep":
                return await step.sleep(name, op[1])
            if op[0] == "wait":
                got = await step.wait_for_event(name, type=op[1], timeout=op[2])
                return got["payload"]
            return await asyncio.gather(
                *(self.one(o, f"{name}.{j}", step) for j, o in enumerate(op[1]))
            )
        except (StepError, WaitTimeout) as err:
            return f"caught {type(err).__name__}"

    def run(self) -> tuple[Any, list[dict[str, Any]]]:
        async def workflow(event: Any, step: Any) -> Any:
            out: list[Any] = []
            await self.interpret(self.program, step, "s", out)
            return out

        for _ in range(500):
            inbox = [
                InboxEvent(t, p, T0 + dt.timedelta(seconds=s))
                for s, t, p in sorted(self.schedule)
                if T0 + dt.timedelta(seconds=s) <= self.now
            ]
            try:
                result = advance(
                    workflow,
                    journal=self.persisted,
                    inbox=inbox,
                    now=lambda: self.now,
                    started_at=T0,
                    limits=EngineLimits(batch_steps=3),
                )
            except SimulatedCrash:
                continue  # nothing persisted: replay from the last journal
            self.advances += 1
            if self.advances == self.discard_advance:
                continue  # crashed before the journal was written
            self.persisted = result.journal
            outcome = result.outcome
            if isinstance(outcome, Complete | Errored):
                return outcome, [r.to_dict() for r in self.persisted]
            if isinstance(outcome, Yielded):
                continue
            assert isinstance(outcome, Waiting)
            upcoming = [
                T0 + dt.timedelta(seconds=s)
                for s, t, _ in self.schedule
                if T0 + dt.timedelta(seconds=s) > self.now and t in outcome.event_types
            ]
            wake = min([*upcoming, *([outcome.wake_at] if outcome.wake_at else [])])
            self.now = max(self.now, wake)
        raise AssertionError("workflow did not finish")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs, schedule=events)
def test_crashes_at_every_point_do_not_change_the_result(
    program: list[Any], schedule: list[Any]
) -> None:
    clean = Harness(program, schedule)
    expected, expected_journal = clean.run()
    assert clean.ran_after_persist == []

    points = [("execution", i) for i in range(1, clean.executions + 1)]
    points += [("advance", j) for j in range(1, clean.advances + 1)]
    for kind, point in points:
        h = Harness(
            program,
            schedule,
            crash_at_execution=point if kind == "execution" else None,
            discard_advance=point if kind == "advance" else None,
        )
        outcome, journal = h.run()
        assert outcome == expected, f"crash at {kind} {point} changed the outcome"
        assert journal == expected_journal, f"crash at {kind} {point} changed the journal"
        assert h.ran_after_persist == [], (
            f"crash at {kind} {point}: steps {h.ran_after_persist} ran after their result "
            "was persisted"
        )
        assert h.executions >= clean.executions
