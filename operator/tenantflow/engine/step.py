"""The `step` argument of `run`: do / sleep / sleep_until / wait_for_event / child over the
journal."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import datetime as dt
import inspect
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tenantflow import jsonsafe
from tenantflow.durations import format_duration, format_time, parse_duration, parse_time
from tenantflow.engine import inline
from tenantflow.engine.attributes import SearchAttributeError
from tenantflow.engine.children import ChildSource, ChildStart, check, child_name
from tenantflow.engine.errors import StepOptionsError
from tenantflow.engine.journal import StepKind, StepRecord, StepState
from tenantflow.engine.outputs import RecordRejected, fetch
from tenantflow.engine.state import MAX_ERROR_MESSAGE, Blocker, Registered, ReplayState
from tenantflow.sdk.errors import NonRetryableError, StepError, WaitTimeout
from tenantflow.sdk.types import _attempt, _step
from tenantflow.vocabulary import Phase

# Sync step callables run here when other steps run beside them (else on the advance's own
# thread: engine/inline.py), so a per-attempt timeout can fire while they work. A callable
# that ignores its timeout keeps its thread until its advance ends: each advance is its own
# process (sandbox.pod.worker), killed at its deadline.
_SYNC_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="tenantflow-step")


class StepApi:
    def __init__(self, state: ReplayState) -> None:
        self._s = state

    def hold(self, held: bool) -> None:
        """Another runtime holds the workflow's control (engine/typescript.py: a message
        sent to Deno and not yet answered): the advance is executing, not idle, until it
        is released."""
        s = self._s
        if held:
            s.executing += 1
        else:
            s.executing -= 1
            s.exec_done.set()

    # ------------------------------------------------------------------ queries
    def query(self, name: str, handler: Callable[..., Any]) -> None:
        """Register a query handler: `tenantflow query INSTANCE name [--args JSON]` calls
        `handler(*args)` after a read-only replay of the journal, and answers with its JSON
        value (engine/queries.py). Not a step: not journaled, not awaited."""
        self._s.register_query(name, handler)

    # ------------------------------------------------------------------ attributes
    async def set_attributes(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Set search attributes the definition declares (spec.searchAttributes) from the
        code: `await step.set_attributes(status="tests-passed", coverage=81)`, or a dict for
        names that are not identifiers. None removes one. Not a step: nothing is journaled,
        the replay sets them again (engine/attributes.py)."""
        s = self._s
        if values is not None and not isinstance(values, Mapping):
            s.fail(
                SearchAttributeError(
                    "step.set_attributes: give attributes as name=value or one dict, got "
                    f"{type(values).__name__}"
                )
            )
        s.set_attributes({**(values or {}), **more})

    # ------------------------------------------------------------------ step.do
    async def do(
        self,
        name: str,
        fn: Callable[[], Any],
        *,
        retries: dict[str, Any] | None = None,
        timeout: str | float | dt.timedelta | None = None,
        rollback: Callable[..., Any] | None = None,
        rollback_retries: dict[str, Any] | None = None,
        rollback_timeout: str | float | dt.timedelta | None = None,
    ) -> Any:
        s = self._s
        undo = self._rollback(name, rollback, rollback_retries, rollback_timeout)
        rec = await s.claim_step(name, StepKind.DO)
        done, output = await self._replayed(rec, undo)
        if done:
            return output
        if not callable(fn):
            s.fail(
                StepOptionsError(
                    f"step {name!r}: the second argument must be a callable "
                    f"taking no arguments, got {type(fn).__name__}"
                ),
                name,
            )
        policy = s.checked(name, lambda: s.defaults.retries.merged(retries, step=name))
        seconds = s.checked(name, lambda: self._timeout(name, timeout))
        if rec.state is StepState.RETRYING and rec.attempts > policy.limit:
            # the last attempt was lost with its process (the operator recorded why)
            rec.state, rec.next_attempt_at = StepState.ERRORED, None
            s.changed = True
            s.finished(rec)
            raise _step_error(rec)
        recalled, value = s.recall(name)
        if recalled:  # completed by an advance whose journal never reached the status
            seen = s.keep(rec, value)
            rec.attempts = max(rec.attempts, 1)
            rec.state, rec.error, rec.next_attempt_at = StepState.COMPLETE, None, None
            self._declare(rec, undo)
            s.finished(rec)
            s.executed.append((name, "recalled"))
            return seen
        while True:
            retry_at = rec.next_attempt_at
            if rec.state is StepState.RETRYING and retry_at is not None and retry_at > s.now():
                await s.block(Blocker(name, "retry", until=retry_at))
            if s.compensating:  # run() failed beside it (asyncio.gather): no new attempt
                await s.halt(name)
            rec.state = StepState.RUNNING
            ok, value, error, final = await self.attempt(name, fn, seconds, rec.attempts + 1)
            rec.attempts += 1
            s.changed = True
            if ok:
                seen = s.keep(rec, value)
                s.remember(name, seen)
                rec.state, rec.error, rec.next_attempt_at = StepState.COMPLETE, None, None
                self._declare(rec, undo)
                s.finished(rec)
                s.executed.append((name, "success"))
                return seen
            rec.error = error
            rec.failed(rec.attempts, error, s.now())
            s.executed.append((name, "timeout" if error["name"] == "StepTimeout" else "failure"))
            if final or rec.attempts > policy.limit:
                rec.state, rec.next_attempt_at = StepState.ERRORED, None
                s.finished(rec)
                raise _step_error(rec)
            rec.state = StepState.RETRYING
            rec.next_attempt_at = s.now() + dt.timedelta(seconds=policy.delay_for(rec.attempts))

    async def _replayed(self, rec: StepRecord, undo: Registered | None) -> tuple[bool, Any]:
        """(True, output) for a completed step (its rollback found again, to compensate
        with if need be); raises the StepError of a failed one; else (False, None)."""
        s = self._s
        done, output = s.completed(rec, reopen_as=StepState.RUNNING)  # rejected: run it again
        if done:
            if undo is not None:
                s.rollbacks[rec.name] = undo
            return True, output
        if rec.state is StepState.ERRORED:
            raise _step_error(rec)
        if s.compensating or s.read_only:  # (its output was rejected: it stays unfinished)
            await s.halt(rec.name)
        return False, None

    def _rollback(
        self,
        name: str,
        fn: Callable[..., Any] | None,
        retries: dict[str, Any] | None,
        timeout: str | float | dt.timedelta | None,
    ) -> Registered | None:
        """A step's rollback and its own options, checked whenever the step is called
        (a mistake shows on the first run, not when a compensation needs it)."""
        s = self._s
        if fn is None:
            if retries is not None or timeout is not None:
                s.fail(
                    StepOptionsError(
                        f"step {name!r}: rollback_retries/rollback_timeout need a rollback="
                    ),
                    name,
                )
            return None
        if not callable(fn):
            s.fail(
                StepOptionsError(
                    f"step {name!r}: rollback must be a callable taking the rollback's "
                    f"context (tenantflow.sdk.RollbackContext), got {type(fn).__name__}"
                ),
                name,
            )
        policy = s.checked(
            name, lambda: s.defaults.retries.merged(retries, step=f"{name} rollback")
        )
        seconds = s.checked(name, lambda: self._timeout(f"{name} rollback", timeout))
        return Registered(fn, policy, seconds)

    def _declare(self, rec: StepRecord, undo: Registered | None) -> None:
        """A step that completes now with a rollback: its place among such completions
        (compensation undoes them newest first, asyncio.gather's in completion order)."""
        if undo is not None:
            rec.rollback = self._s.next_rollback()
            self._s.rollbacks[rec.name] = undo

    def _timeout(self, name: str, timeout: str | float | dt.timedelta | None) -> float:
        """The attempt timeout: an explicit one must fit the tenant's cap (else a clear
        error); the definition's default is clamped to it."""
        cap = self._s.limits.max_step_timeout
        if timeout is None:
            return min(self._s.defaults.timeout, cap)
        seconds = parse_duration(timeout, field=f"step {name!r}: timeout")
        if seconds > cap or seconds <= 0:
            raise StepOptionsError(
                f"step {name!r}: timeout {format_duration(seconds)} must be > 0 and at most the "
                f"tenant's maxStepTimeoutSeconds ({format_duration(cap)}); lower it"
            )
        return seconds

    async def attempt(
        self, name: str, fn: Callable[[], Any], timeout: float, attempt: int
    ) -> tuple[bool, Any, dict[str, Any], bool]:
        """Run one attempt: (ok, value, error, final). `final` = do not retry."""
        s = self._s
        if s.on_attempt is not None:
            s.on_attempt(name, attempt)
        token, step_token = _attempt.set(attempt), _step.set(name)
        s.executing += 1
        try:
            async with asyncio.timeout(timeout):
                value = await _call(fn, timeout, lambda: s.executing == 1)
            return True, value, {}, False
        except TimeoutError:
            msg = f"attempt {attempt} did not finish within {format_duration(timeout)}"
            return False, None, {"name": "StepTimeout", "message": msg}, False
        except (Exception, SystemExit, KeyboardInterrupt) as exc:  # tenant code's sys.exit too
            return False, None, s.error(exc), isinstance(exc, NonRetryableError)
        finally:
            _attempt.reset(token)
            _step.reset(step_token)
            s.executing -= 1
            s.exec_done.set()

    # ------------------------------------------------------------------ sleeps
    async def sleep(self, name: str, duration: str | float | dt.timedelta) -> None:
        s = self._s
        seconds = s.checked(
            name,
            lambda: self._bounded(name, parse_duration(duration, field=f"step {name!r}: duration")),
        )
        await self._sleep(name, lambda now: now + dt.timedelta(seconds=seconds))

    async def sleep_until(self, name: str, when: str | dt.datetime) -> None:
        s = self._s
        target = s.checked(name, lambda: parse_time(when, field=f"step {name!r}: when"))
        await self._sleep(name, lambda _now: target)

    async def _sleep(self, name: str, target: Callable[[dt.datetime], dt.datetime]) -> None:
        s = self._s
        rec = await s.claim_step(name, StepKind.SLEEP)
        if rec.state is StepState.COMPLETE:
            return
        if rec.until is None:
            rec.until = target(s.now())
        if s.now() >= rec.until:
            rec.state = StepState.COMPLETE
            s.finished(rec)
            return
        await s.block(Blocker(name, "sleep", until=rec.until))

    # ------------------------------------------------------------------ events
    async def wait_for_event(
        self, name: str, *, type: str, timeout: str | float | dt.timedelta | None = None
    ) -> dict[str, Any]:
        s = self._s
        if not isinstance(type, str) or not type:
            s.fail(StepOptionsError(f"step {name!r}: type must be a non-empty string"), name)
        seconds = s.checked(
            name,
            lambda: self._bounded(
                name,
                s.defaults.event_timeout
                if timeout is None
                else parse_duration(timeout, field=f"step {name!r}: timeout"),
            ),
        )
        rec = await s.claim_step(name, StepKind.EVENT)
        if rec.state is StepState.COMPLETE:
            received: dict[str, Any] = s.output_of(rec)
            return received
        if rec.state is StepState.ERRORED:
            raise WaitTimeout(name, rec.event_type or type, format_duration(seconds))
        if rec.until is None:
            rec.event_type, rec.until = type, s.now() + dt.timedelta(seconds=seconds)
        got = s.take_event(rec.event_type or type)
        if got is not None:
            index, event = got
            stamp = event.timestamp or s.now()
            rec.event_index, rec.state = index, StepState.COMPLETE
            delivered = {
                "type": event.type,
                "payload": event.payload,
                "timestamp": format_time(stamp),
            }
            rec.output = delivered
            s.finished(rec)
            return delivered
        if s.now() >= rec.until:
            err = WaitTimeout(name, rec.event_type or type, format_duration(seconds))
            rec.state, rec.error = StepState.ERRORED, {"name": "WaitTimeout", "message": str(err)}
            s.finished(rec)
            raise err
        await s.block(Blocker(name, "event", until=rec.until, event_type=rec.event_type))

    # ------------------------------------------------------------------ children
    async def child(
        self,
        name: str,
        definition: str,
        params: Any = None,
        *,
        revision: int | None = None,
        source: Mapping[str, Any] | None = None,
    ) -> Any:
        """Start another instance of this tenant and wait for its result, durably.

        The child is a WorkflowInstance owned by this one (terminating or deleting the
        parent ends it too), named after this instance and `name`. Its output is this
        step's output; an Errored or Terminated child raises StepError here.

        `source` (`{"files": {"plan.py": text}, "main": "plan"}`): a plan written at
        runtime. The operator records it as a revision of `definition` (a definition of
        this tenant written at runtime, created by the first such write) unless that
        revision exists already, and starts the child pinned to it; the revision is
        journaled on this step, so a replay never writes it again. A source over the
        caps, one that does not parse or lacks its entrypoint, or one past the tenant's
        budget fails this step (StepError), as a failed child does."""
        s = self._s
        start = s.checked(
            name, lambda: self._child_start(name, definition, params, revision, source)
        )
        rec = await s.claim_step(name, StepKind.CHILD)
        done, output = s.completed(rec, reopen_as=StepState.WAITING)  # rejected: await it again
        if done:
            return output
        if rec.state is StepState.ERRORED:
            raise _step_error(rec)
        if s.read_only:  # a query's replay: no child is started or awaited
            await s.halt(name)
        if start.source is not None:
            if rec.revision is not None:  # recorded already: the child runs that revision
                start = dataclasses.replace(start, revision=rec.revision, source=None)
            elif (problem := start.source.too_large()) is not None:
                rec.state = StepState.ERRORED
                rec.error = {"name": "SourceTooLarge", "message": f"child {name!r}: {problem}"}
                s.finished(rec)
                raise _step_error(rec)
        rec.child = start.name
        result = s.children.get(name)
        if result is None:
            await s.block(Blocker(name, "child", child=start))
        rec.attempts = 1
        if result.phase == Phase.COMPLETE:
            try:
                value = (
                    result.output
                    if result.output_ref is None
                    else fetch(result.output_ref, s.offload, what=f"child {name!r}")
                )
            except RecordRejected as exc:  # the child's output, rewritten in the store
                s.reject("output", name, exc.problem)
                rec.state = StepState.ERRORED
                rec.error = {
                    "name": "OutputRejected",
                    "message": s.cut(
                        f"child instance {start.name}: its stored output {exc.ref} was "
                        f"rejected ({exc.problem})",
                        MAX_ERROR_MESSAGE,
                    ),
                }
                s.finished(rec)
                raise _step_error(rec) from None
            seen = s.keep(rec, value)
            rec.state = StepState.COMPLETE
            s.finished(rec)
            return seen
        err = result.error or {}
        rec.state = StepState.ERRORED
        rec.error = (
            {"name": "ChildTerminated", "message": f"child instance {start.name} was terminated"}
            if result.phase == Phase.TERMINATED
            else {
                "name": str(err.get("name") or "Errored"),
                "message": s.cut(
                    f"child instance {start.name}: {err.get('message', '')}", MAX_ERROR_MESSAGE
                ),
            }
        )
        s.finished(rec)
        raise _step_error(rec)

    def _child_start(
        self,
        name: str,
        definition: str,
        params: Any,
        revision: int | None,
        source: Mapping[str, Any] | None,
    ) -> ChildStart:
        if not isinstance(name, str) or not name:
            raise StepOptionsError("step names must be non-empty strings")
        try:
            check(name, definition, params, revision, source)
        except ValueError as exc:
            raise StepOptionsError(str(exc)) from None
        s = self._s
        return ChildStart(
            step=name,
            name=child_name(s.instance_id, name, s.epoch),
            definition=definition,
            revision=revision,
            params=jsonsafe.loads(jsonsafe.dumps(params)),
            source=None if source is None else ChildSource.of(name, source),
        )

    def _bounded(self, name: str, seconds: float) -> float:
        cap = self._s.limits.max_wait_seconds
        if seconds > cap:
            raise StepOptionsError(
                f"step {name!r}: {format_duration(seconds)} is longer than "
                f"the maximum wait of {format_duration(cap)}"
            )
        return seconds


async def _call(fn: Callable[[], Any], timeout: float, alone: Callable[[], bool]) -> Any:
    """Await async callables; run sync ones in a thread, or on this thread when `alone`
    (no other step runs: engine/inline.py), awaiting what they return."""
    if inspect.iscoroutinefunction(fn):
        return await fn()
    await asyncio.sleep(0)  # steps started with this one (asyncio.gather) are counted now
    if alone() and inline.possible():
        result = inline.run(fn, timeout)
    else:
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(_SYNC_POOL, contextvars.copy_context().run, fn)
    if inspect.isawaitable(result):  # e.g. `lambda: fetch(url)` with an async fetch
        result = await result
    return result


def _step_error(rec: StepRecord) -> StepError:
    err = rec.error or {}
    return StepError(rec.name, err.get("name", "Error"), err.get("message", ""), rec.attempts)
