"""Compensation: the rollbacks of completed steps, newest first, as journal entries.

A `step.do(name, fn, rollback=undo)` that completes records its place among such
completions (`StepRecord.rollback`: 1, 2, ...; `asyncio.gather`'s steps in the order they
completed). When the instance must end failed — run() raised, a step failed for good and
was not caught, a fatal engine error — or the operator asks for it (a termination with
rollback, a sandbox that keeps crashing: it appends the marker itself, `begin`), the
journal gets one `compensate` entry (the marker: what triggered it, when, how it ended)
and then one `rollback` entry per rollback, `rollback:<step>`, in the order they run.

The rollback functions are never stored: every advance replays run() as always (stopping
where it failed, and starting nothing new once the marker is there: `ReplayState.halt`),
which declares again the rollbacks of the steps it replays, closures included. So a
rollback is found again after any restart, exactly as the step's own code is.

Each rollback is durable like a step: `Complete` never runs again, `Running` (interrupted)
runs again, `Retrying` waits for its next attempt by its own policy (`rollback_retries=`,
`rollback_timeout=`, else the step defaults), and one out of retries is `Errored`: the
chain stops there, the outcome is `RollbackFailed`, and `tenantflow retry` takes that
entry out so the chain resumes with it (`lifecycle/reset.py`). A step whose result was
never recorded is never compensated; nothing is compensated twice.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable
from typing import Any

from tenantflow.durations import format_time
from tenantflow.engine.journal import StepKind, StepRecord, StepState
from tenantflow.engine.outcome import Compensating, Outcome, RollbackFailed, RolledBack
from tenantflow.engine.state import ROLLBACK_PREFIX, Registered, ReplayState
from tenantflow.sdk.types import RollbackContext
from tenantflow.shapes import StepEntry

MARKER = "compensation"  # the marker entry's name (its kind is what identifies it)
TERMINATED = "Terminated"  # the trigger's name when an operator terminates with rollback


def rollback_name(step: str) -> str:
    return f"{ROLLBACK_PREFIX}{step}"


def owed(journal: list[StepRecord]) -> list[StepRecord]:
    """The completed steps with a rollback, newest completion first."""
    done = [
        r
        for r in journal
        if r.kind is StepKind.DO and r.state is StepState.COMPLETE and r.rollback is not None
    ]
    return sorted(done, key=lambda r: r.rollback or 0, reverse=True)


def owed_in(steps: list[StepEntry]) -> bool:
    """Whether a journal (status.steps) has any rollback to run: the operator's question
    before it begins a compensation itself."""
    return any(
        e.get("kind") == StepKind.DO
        and e.get("state") == StepState.COMPLETE
        and e.get("rollback") is not None
        for e in steps
    )


def compensating_in(steps: list[StepEntry]) -> bool:
    return any(e.get("kind") == StepKind.COMPENSATE for e in steps)


def changes(before: list[StepEntry], after: list[StepEntry]) -> tuple[int, int, int]:
    """Rollbacks (started, succeeded, failed for good) between two journals (metrics)."""
    was = {e.get("name"): e.get("state") for e in before if e.get("kind") == StepKind.ROLLBACK}
    now = [e for e in after if e.get("kind") == StepKind.ROLLBACK]
    started = sum(1 for e in now if e.get("name") not in was)
    ended = [e for e in now if e.get("state") != was.get(e.get("name"))]
    succeeded = sum(1 for e in ended if e.get("state") == StepState.COMPLETE)
    failed = sum(1 for e in ended if e.get("state") == StepState.ERRORED)
    return started, succeeded, failed


def marker(trigger: dict[str, Any], now: dt.datetime) -> StepEntry:
    """The marker entry as `status.steps` holds it (the operator appends it when it
    begins a compensation: a termination with rollback, a sandbox that keeps crashing)."""
    return StepRecord(
        name=MARKER,
        kind=StepKind.COMPENSATE,
        state=StepState.RUNNING,
        started_at=now,
        error=trigger,
    ).to_dict()


def begin(state: ReplayState, trigger: dict[str, Any]) -> None:
    """run() ended failed and owes rollbacks: the compensation phase begins."""
    state.journal.append(
        StepRecord(
            name=MARKER,
            kind=StepKind.COMPENSATE,
            state=StepState.RUNNING,
            started_at=state.now(),
            error=trigger,
        )
    )
    state.forward_len = len(state.journal) - 1
    state.compensating = state.changed = True


async def compensate(
    state: ReplayState,
    attempt: Callable[[str, Callable[[], Any], float, int], Any],
) -> Outcome:
    """Run what is left of the chain; `attempt` is StepApi's (timeout, error capture)."""
    mark = state.journal[state.forward_len]
    trigger = mark.error or {"name": "Errored", "message": ""}
    if mark.state is StepState.COMPLETE:
        return RolledBack(error=trigger)
    done = {
        r.name: r for r in state.journal[state.forward_len + 1 :] if r.kind is StepKind.ROLLBACK
    }
    for step in owed(state.journal[: state.forward_len]):
        name = rollback_name(step.name)
        rec = done.get(name)
        if rec is not None and rec.state is StepState.COMPLETE:
            continue
        if rec is not None and rec.state is StepState.ERRORED:
            return _failed(state, mark, rec, trigger)
        if state.budget_spent():
            return Compensating(wake_at=None, waiting_for=None)
        if rec is None:
            rec = StepRecord(
                name=name, kind=StepKind.ROLLBACK, state=StepState.RUNNING, started_at=state.now()
            )
            state.journal.append(rec)
            state.changed = True
        undo = state.rollbacks.get(step.name)
        if undo is None:
            rec.state, rec.error = StepState.ERRORED, _not_found(step.name)
            state.finished(rec)
            return _failed(state, mark, rec, trigger)
        outcome = await _run(state, rec, step, undo, trigger, attempt)
        if outcome is not None:
            return outcome
    mark.state = StepState.COMPLETE
    state.finished(mark)
    return RolledBack(error=trigger)


async def _run(
    state: ReplayState,
    rec: StepRecord,
    step: StepRecord,
    undo: Registered,
    trigger: dict[str, Any],
    attempt: Callable[[str, Callable[[], Any], float, int], Any],
) -> Outcome | None:
    """Attempts of one rollback until it completes (None), waits for its next attempt
    (Compensating) or is out of retries (RollbackFailed)."""
    mark = state.journal[state.forward_len]
    policy = undo.retries
    if rec.state is StepState.RETRYING and rec.attempts > policy.limit:
        rec.state, rec.next_attempt_at = StepState.ERRORED, None  # its last attempt was lost
        state.finished(rec)
        return _failed(state, mark, rec, trigger)
    while True:
        retry_at = rec.next_attempt_at
        if rec.state is StepState.RETRYING and retry_at is not None and retry_at > state.now():
            return Compensating(
                wake_at=retry_at,
                waiting_for={"kind": "retry", "step": rec.name, "until": format_time(retry_at)},
            )
        rec.state = StepState.RUNNING
        number = rec.attempts + 1
        context = RollbackContext(
            step=step.name,
            output=_output(state, step),
            error=dict(trigger),
            attempt=number,
            instance_id=state.instance_id,
            params=state.params,
        )
        ok, value, error, final = await attempt(
            rec.name, _bound(undo.fn, context), undo.timeout, number
        )
        rec.attempts = number
        state.changed = True
        if ok:
            try:
                state.keep(rec, value)
            except Exception:
                rec.output, rec.output_ref = None, None
            rec.state, rec.error, rec.next_attempt_at = StepState.COMPLETE, None, None
            state.finished(rec)
            state.executed.append((rec.name, "success"))
            return None
        rec.error = error
        rec.failed(number, error, state.now())
        state.executed.append(
            (rec.name, "timeout" if error["name"] == "StepTimeout" else "failure")
        )
        if final or number > policy.limit:
            rec.state, rec.next_attempt_at = StepState.ERRORED, None
            state.finished(rec)
            return _failed(state, mark, rec, trigger)
        rec.state = StepState.RETRYING
        rec.next_attempt_at = state.now() + dt.timedelta(seconds=policy.delay_for(number))


def _output(state: ReplayState, step: StepRecord) -> Any:
    try:
        return state.output_of(step)
    except Exception:
        return None


def _bound(fn: Callable[..., Any], context: RollbackContext) -> Callable[[], Any]:
    """The rollback as a step callable: called with its context (or with nothing, when it
    takes no argument), sync in the step thread pool, async on the loop."""
    try:
        takes = bool(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: give it the context
        takes = True
    if inspect.iscoroutinefunction(fn):

        async def run_async() -> Any:
            return await (fn(context) if takes else fn())

        return run_async

    def run_sync() -> Any:
        return fn(context) if takes else fn()

    return run_sync


def _failed(
    state: ReplayState, mark: StepRecord, rec: StepRecord, trigger: dict[str, Any]
) -> RollbackFailed:
    """The chain stops at `rec`; the marker says so (retry resumes it)."""
    if mark.state is not StepState.ERRORED:
        mark.state = StepState.ERRORED
        state.finished(mark)
    err = rec.error or {}
    return RollbackFailed(
        error={
            "name": str(err.get("name") or "RollbackFailed"),
            "message": str(err.get("message") or ""),
            "step": rec.name,
        },
        trigger=dict(trigger),
    )


def _not_found(step: str) -> dict[str, Any]:
    return {
        "name": "RollbackNotFound",
        "message": (
            f"step {step!r} completed with a rollback, but replaying run() did not declare "
            "it again (run() stopped before that step: a non-determinism error?)"
        ),
    }
