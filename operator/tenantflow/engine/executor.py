"""`advance`: replay a workflow against its journal until it finishes or cannot progress.

Each advance runs in a fresh event loop of its own, so "nothing can progress" is a fact
about this workflow alone: no step attempt is executing and the loop has no ready
callbacks. Blocked steps then say why (sleep, event, retry backoff, batch budget) and the
outcome follows from them. Callers inside asyncio use `advance_async` (a worker thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from tenantflow.durations import format_time
from tenantflow.engine import compensation, queries
from tenantflow.engine import journal as journal_mod
from tenantflow.engine.children import MAX_SOURCES_PER_ADVANCE, ChildResult, ChildStart
from tenantflow.engine.env import STREAM_EVERY, Lines, Printed, WorkflowEnv, WorkflowLogger
from tenantflow.engine.errors import EngineError, InvalidAwaitError
from tenantflow.engine.loader import WorkflowFn, arity
from tenantflow.engine.options import EngineLimits, StepDefaults
from tenantflow.engine.outcome import Advance, Complete, Errored, Outcome, Waiting, Yielded
from tenantflow.engine.outputs import OutputStore, StepResults, store
from tenantflow.engine.queries import QueryAnswer
from tenantflow.engine.secrets import Secrets
from tenantflow.engine.state import Blocker, InboxEvent, ReplayState
from tenantflow.engine.step import StepApi
from tenantflow.sdk.errors import StepError, WaitTimeout


class WorkflowLoop(asyncio.SelectorEventLoop):
    """An advance's own event loop. The sandbox's spare child makes one before it knows its
    advance (sandbox/pod/worker.py), so its cost is not on the request's path."""

    def idle(self) -> bool:
        """No callback is ready to run (workflow code is parked on futures or timers)."""
        return not self._ready  # type: ignore[attr-defined]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def advance(
    workflow: WorkflowFn,
    *,
    journal: Sequence[journal_mod.StepRecord] = (),
    params: Any = None,
    instance_id: str = "instance",
    started_at: dt.datetime | None = None,
    inbox: Sequence[InboxEvent] = (),
    now: Callable[[], dt.datetime] = _utcnow,
    tenant: str = "",
    db: Any = None,
    defaults: StepDefaults | None = None,
    limits: EngineLimits | None = None,
    offload: OutputStore | None = None,
    on_attempt: Callable[[str, int], None] | None = None,
    lost_attempts: dict[str, dict[str, Any]] | None = None,
    results: StepResults | None = None,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
    epoch: int = 0,
    children: Mapping[str, ChildResult] | None = None,
    declared_attributes: Collection[str] | None = (),
    on_lines: Callable[[Lines], None] | None = None,
    loop: WorkflowLoop | None = None,
) -> Advance:
    """Replay `workflow` over `journal`, run what is new, and say how it ended.

    The input journal is not modified; `Advance.journal` is the one to persist. A step
    whose result is in the input journal never runs again (at-least-once for the rest).
    `on_attempt(step, attempt)` is called as each attempt starts (the sandbox reports it,
    so an attempt whose process the kernel kills is charged to that step);
    `lost_attempts` ({step: {"attempts", "error"}}) are such attempts, failed.
    `results` keeps completed steps' results beside the journal: one found there is
    recalled instead of run. `children` are the finished children of `step.child` calls,
    by step name; `epoch` counts the instance's resets (its children's names depend on it).
    `declared_attributes`: the search attribute names `step.set_attributes` may set (the
    definition's spec.searchAttributes; None: any, for tests without a definition).
    `on_lines`: the advance's log lines go out through it in batches as they come (the
    sandbox streams them to its runner), none in `Advance.logs`, with the streamed caps.
    `loop`: a fresh WorkflowLoop made ahead (None: one is made here); closed at the end.
    """
    loop = WorkflowLoop() if loop is None else loop
    try:
        return loop.run_until_complete(
            _advance(
                workflow,
                ReplayState(
                    journal,
                    now=now,
                    defaults=defaults or StepDefaults(),
                    limits=limits or EngineLimits(),
                    offload=offload,
                    inbox=inbox,
                    on_attempt=on_attempt,
                    lost_attempts=lost_attempts,
                    results=results,
                    instance_id=instance_id,
                    epoch=epoch,
                    children=children,
                    secrets=secrets,
                    params=params,
                    declared_attributes=declared_attributes,
                ),
                event={
                    "payload": params,
                    "instanceId": instance_id,
                    "timestamp": format_time(started_at or now()),
                },
                tenant=tenant,
                instance_id=instance_id,
                db=db,
                secrets=secrets if secrets is not None else Secrets(None),
                on_lines=on_lines,
            )
        )
    finally:
        loop.close()


async def advance_async(workflow: WorkflowFn, **kwargs: Any) -> Advance:
    """`advance` from inside a running event loop (runs in a worker thread)."""
    return await asyncio.to_thread(lambda: advance(workflow, **kwargs))


async def _advance(
    workflow: WorkflowFn,
    state: ReplayState,
    *,
    event: dict[str, Any],
    tenant: str,
    instance_id: str,
    db: Any,
    secrets: Mapping[str, Mapping[str, str]],
    on_lines: Callable[[Lines], None] | None,
) -> Advance:
    logger = WorkflowLogger(now=state.now, replaying=state.replaying, stream=on_lines)
    env = WorkflowEnv(db=db, tenant=tenant, instance_id=instance_id, log=logger, secrets=secrets)
    api = StepApi(state)
    args = (event, api, env)[: arity(workflow)]
    out, err = Printed(logger, "stdout"), Printed(logger, "stderr")
    printing = contextlib.ExitStack()  # what it prints is its output lines, by step
    printing.enter_context(contextlib.redirect_stdout(out))
    printing.enter_context(contextlib.redirect_stderr(err))
    main = asyncio.ensure_future(workflow(*args))
    ticker = asyncio.ensure_future(_flush_every(logger)) if on_lines else None
    try:
        await _settle(main, state)
        outcome = _outcome(main, state)
        if not state.compensating and isinstance(outcome, Errored):
            # nothing new starts; attempts under way beside the failure (asyncio.gather)
            # end first, so a step that completes now is compensated too
            state.compensating = True
            await _drain(state)
            if compensation.owed(state.journal):  # it failed owing rollbacks: they run now
                compensation.begin(state, outcome.error)
            else:
                state.compensating = False
        if state.compensating:
            outcome = await compensation.compensate(state, api.attempt)
    finally:
        if ticker is not None:
            ticker.cancel()
        await _cancel_all()
        printing.close()
        out.finish()
        err.finish()
        logger.output_done()
    return Advance(
        journal=state.journal,
        outcome=outcome,
        changed=state.changed,
        executed=state.executed,
        logs=logger.lines,
        rejected=state.rejected,
        queries=sorted(state.queries),
        attributes=state.attributes,
    )


async def _flush_every(logger: WorkflowLogger) -> None:
    """Streaming: lines gathered but not yet a whole batch leave every STREAM_EVERY
    seconds (a step body printing in its thread while the loop waits for it)."""
    while True:
        await asyncio.sleep(STREAM_EVERY)
        logger.flush()


def query(
    workflow: WorkflowFn,
    name: str,
    args: Sequence[Any] = (),
    *,
    journal: Sequence[journal_mod.StepRecord] = (),
    params: Any = None,
    instance_id: str = "instance",
    started_at: dt.datetime | None = None,
    now: Callable[[], dt.datetime] = _utcnow,
    tenant: str = "",
    db: Any = None,
    defaults: StepDefaults | None = None,
    limits: EngineLimits | None = None,
    offload: OutputStore | None = None,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
    epoch: int = 0,
) -> QueryAnswer:
    """Answer the query `name` of an instance whose journal is `journal` (queries.py).

    `run()` is replayed read-only: a step whose result the journal holds returns it, and
    the first call that would do anything new — a new step, one not finished, a sleep not
    over, an event not yet taken, a child — halts there instead, as does everything
    after it. Nothing runs a step body, waits, or records anything (give it a database
    that refuses writes: `TenantDatabase(read_only=True)`). Then `handler(*args)` is
    called, and its checked value is the answer; an error of any kind is an answer too,
    with `error` set. Raises QueryError only for bad arguments."""
    checked = queries.check_args(args)
    loop = WorkflowLoop()
    try:
        return loop.run_until_complete(
            _query(
                workflow,
                ReplayState(
                    journal,
                    now=now,
                    defaults=defaults or StepDefaults(),
                    limits=limits or EngineLimits(),
                    offload=offload,
                    inbox=(),
                    instance_id=instance_id,
                    epoch=epoch,
                    secrets=secrets,
                    params=params,
                    read_only=True,
                ),
                name,
                checked,
                event={
                    "payload": params,
                    "instanceId": instance_id,
                    "timestamp": format_time(started_at or now()),
                },
                tenant=tenant,
                db=db,
                secrets=secrets if secrets is not None else Secrets(None),
            )
        )
    finally:
        loop.close()


async def _query(
    workflow: WorkflowFn,
    state: ReplayState,
    name: str,
    args: list[Any],
    *,
    event: dict[str, Any],
    tenant: str,
    db: Any,
    secrets: Mapping[str, Mapping[str, str]],
) -> QueryAnswer:
    logger = WorkflowLogger(now=state.now, replaying=lambda: True)  # a query logs nothing
    env = WorkflowEnv(
        db=db, tenant=tenant, instance_id=state.instance_id, log=logger, secrets=secrets
    )
    api = StepApi(state)
    main = asyncio.ensure_future(workflow(*(event, api, env)[: arity(workflow)]))
    try:
        await _settle(main, state)
        if main.done() and not main.cancelled():
            main.exception()  # run() may have ended (returned or raised): handlers remain
        if state.fatal is not None:  # the replay itself failed (NonDeterminism, ...)
            registered = tuple(sorted(state.queries))
            message = state.cut(f"the replay failed before the query: {state.fatal}", 4096)
            return QueryAnswer(
                name, error={"name": state.fatal.reason, "message": message}, registered=registered
            )
        # before the parked steps are cancelled: their `finally:` blocks must not run first
        return await queries.call(state.queries, name, args, state.error)
    finally:
        await _cancel_all()


async def _settle(main: asyncio.Future[Any], state: ReplayState) -> None:
    """Return when `main` is done or nothing in this loop can make progress."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, WorkflowLoop)
    while not main.done():
        if state.executing:
            state.exec_done.clear()
            await state.exec_done.wait()
            continue
        await asyncio.sleep(0)
        if not main.done() and not state.executing and loop.idle():
            return


async def _drain(state: ReplayState) -> None:
    """Return when no step attempt is executing (each records its result as it ends)."""
    while state.executing:
        state.exec_done.clear()
        await state.exec_done.wait()


def _outcome(main: asyncio.Future[Any], state: ReplayState) -> Outcome:
    if state.fatal is not None:
        if main.done() and not main.cancelled():
            main.exception()  # seen: else asyncio logs it into the tenant's output lines
        return Errored(_error(state, state.fatal, state.fatal_step))
    if main.done():
        exc = main.exception()
        if exc is None:
            try:
                _, ref, seen = _store_output(main.result(), state)
            except EngineError as bad_output:
                return Errored(_error(state, bad_output, None))
            return Complete(output=None if ref else seen, output_ref=ref)
        if not isinstance(exc, Exception):
            raise exc  # KeyboardInterrupt, SystemExit, a simulated crash: not ours to keep
        return Errored(_error(state, exc, None))
    if any(b.kind == "yield" for b in state.blockers):
        return Yielded()
    if not state.blockers:
        err = InvalidAwaitError(
            "run() is waiting on something that is not a step (asyncio.sleep or setTimeout, "
            "a lock, a network call outside step.do?); such waits cannot survive a restart. "
            "Use step.sleep / step.wait_for_event (waitForEvent), and do I/O inside step.do"
        )
        return Errored(_error(state, err, None))
    return _waiting(state.blockers, state.journal)


def _store_output(value: Any, state: ReplayState) -> tuple[Any, str | None, Any]:
    return store(
        value,
        what="run()",
        key="__output__",
        cap=state.limits.inline_output_bytes,
        limit=state.limits.max_output_bytes,
        offload=state.offload,
    )


def _waiting(blockers: list[Blocker], records: list[journal_mod.StepRecord]) -> Waiting:
    order = {r.name: i for i, r in enumerate(records)}
    first = min(blockers, key=lambda b: order.get(b.step, len(order)))
    times = [b.until for b in blockers if b.until is not None]
    waiting_for: dict[str, Any] = {"kind": first.kind, "step": first.step}
    if first.until is not None:
        waiting_for["until"] = format_time(first.until)
    if first.event_type is not None:
        waiting_for["eventType"] = first.event_type
    if first.child is not None:
        waiting_for["child"] = first.child.name
    return Waiting(
        wake_at=min(times) if times else None,
        event_types=frozenset(b.event_type for b in blockers if b.event_type),
        waiting_for=waiting_for,
        children=_starts(blockers),
    )


def _starts(blockers: list[Blocker]) -> tuple[ChildStart, ...]:
    """The children to start (or find started): all of them, but the sources written at
    runtime they carry together stay within MAX_SOURCES_PER_ADVANCE; the starts past it
    are left for the next advance (the operator asks for one at once when an awaited
    child has no start)."""
    starts, carried = [], 0
    for b in blockers:
        if b.child is None:
            continue
        if b.child.source is not None:
            size = b.child.source.size
            if carried and carried + size > MAX_SOURCES_PER_ADVANCE:
                continue
            carried += size
        starts.append(b.child)
    return tuple(starts)


def _error(state: ReplayState, exc: BaseException, step: str | None) -> dict[str, Any]:
    """`status.error`: {name, message, step?, traceback?} (a StepError reports the step's
    own error; the step's journal entry has its traceback)."""
    if isinstance(exc, StepError):
        return {"name": exc.error_name, "message": exc.error_message, "step": exc.step}
    if isinstance(exc, WaitTimeout):
        return {"name": "WaitTimeout", "message": str(exc), "step": exc.step}
    out = state.error(exc, **({"step": step} if step is not None else {}))
    if isinstance(exc, EngineError):
        out["name"] = exc.reason
    return out


async def _cancel_all() -> None:
    """Cancel the workflow's parked tasks so the loop can close cleanly."""
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(
            result, Exception | asyncio.CancelledError
        ):
            raise result
