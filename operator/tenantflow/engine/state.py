"""Mutable state of one advance: the journal cursor, budget, blockers, inbox, fatal error."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from tenantflow import jsonsafe
from tenantflow.engine import masking, queries, tracebacks
from tenantflow.engine.attributes import Attributes, SearchAttributeError, to_set
from tenantflow.engine.children import ChildResult, ChildStart
from tenantflow.engine.errors import (
    DuplicateStepNameError,
    EngineError,
    NonDeterminismError,
    StepLimitExceeded,
    StepOptionsError,
)
from tenantflow.engine.journal import (
    FINAL_STATES,
    FORWARD_KINDS,
    StepKind,
    StepRecord,
    StepState,
)
from tenantflow.engine.options import EngineLimits, RetryPolicy, StepDefaults
from tenantflow.engine.outputs import (
    OutputStore,
    RecordRejected,
    StepResults,
    encode,
    fetch,
    store,
)

MAX_ERROR_MESSAGE = 4096  # characters of an error message kept in the journal
MAX_TRACEBACK = 4096  # characters of an error's traceback (the CRD's maxLength too)
MAX_STEP_NAME = 256
ROLLBACK_PREFIX = "rollback:"  # the journal names of rollbacks; no step's name may start so


@dataclass(frozen=True, slots=True)
class Registered:
    """A completed step's rollback, as run() declared it on this replay."""

    fn: Callable[..., Any]
    retries: RetryPolicy
    timeout: float


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """An entry of `spec.events`; `timestamp` is when the operator first saw it."""

    type: str
    payload: Any = None
    timestamp: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Blocker:
    step: str
    kind: str  # sleep | event | retry | child | yield | halt (compensating: run() stops)
    until: dt.datetime | None = None
    event_type: str | None = None
    child: ChildStart | None = None  # a child to start (unless it exists) and await


class ReplayState:
    def __init__(
        self,
        journal: Sequence[StepRecord],
        *,
        now: Callable[[], dt.datetime],
        defaults: StepDefaults,
        limits: EngineLimits,
        offload: OutputStore | None,
        inbox: Sequence[InboxEvent],
        on_attempt: Callable[[str, int], None] | None = None,
        lost_attempts: dict[str, dict[str, Any]] | None = None,
        results: StepResults | None = None,
        instance_id: str = "instance",
        epoch: int = 0,
        children: Mapping[str, ChildResult] | None = None,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        params: Any = None,
        read_only: bool = False,
        declared_attributes: Collection[str] | None = (),
    ) -> None:
        # copies: the caller's journal is what is persisted, and must stay untouched
        self.journal = [dataclasses.replace(r) for r in journal]
        self.replay_len = len(journal)
        # the entries run() called (the rest is the compensation phase, never claimed);
        # once that phase began, run() is replayed only to find the rollbacks again:
        # nothing new is claimed, started or awaited
        self.forward_len = next(
            (i for i, r in enumerate(self.journal) if r.kind not in FORWARD_KINDS),
            len(self.journal),
        )
        self.compensating = self.forward_len < len(self.journal)
        self.rollbacks: dict[str, Registered] = {}  # by step name, as replayed
        # a query's replay (engine/queries.py): what the journal holds is replayed, and the
        # first call that would do anything new (a new step, an unfinished one) halts
        self.read_only = read_only
        self.queries: dict[str, Callable[..., Any]] = {}  # step.query handlers, by name
        # the search attributes run() may set (the definition's; None: any name) and those
        # it set so far in this replay, the last call winning (engine/attributes.py)
        self.declared_attributes = declared_attributes
        self.attributes: Attributes = {}
        self.params = params
        self.now = now
        self.defaults = defaults
        self.limits = limits
        self.offload = offload
        self.inbox = list(inbox)
        self.consumed = {r.event_index for r in journal if r.event_index is not None}
        self.calls = 0
        self.names: set[str] = set()
        self.finished_new = 0
        self.started = time.monotonic()
        self.blockers: list[Blocker] = []
        self.fatal: EngineError | None = None
        self.fatal_step: str | None = None
        self.executing = 0
        self.exec_done = asyncio.Event()
        self.executed: list[tuple[str, str]] = []
        self.changed = False
        self.on_attempt = on_attempt
        self.lost_attempts = lost_attempts or {}
        self.results = results
        self.instance_id = instance_id
        self.epoch = epoch  # resets of the instance: its child steps name new children
        self.children = children or {}  # finished children, by the parent's step name
        self.secrets = secrets or {}
        # stored records ignored as absent ({record, step, problem}): reported, never used
        self.rejected: list[dict[str, str]] = []
        self._secret_values: list[str] | None = None  # read at the first cut

    # ------------------------------------------------------------------ errors
    def cut(self, text: str, limit: int) -> str:
        """An error message for the journal: known secret values masked, then cut to
        `limit` characters (a cut must not leave half a value for the runner to miss)."""
        return masking.cut(text, limit, self._masked())

    def error(self, exc: BaseException, **more: Any) -> dict[str, Any]:
        """An error of tenant code for the journal or the status: its class name, its
        message and the traceback of the tenant's own frames, each masked, then cut."""
        out: dict[str, Any] = {
            "name": tracebacks.error_name(exc),
            "message": self.cut(str(exc), MAX_ERROR_MESSAGE),
            **more,
        }
        trace = tracebacks.tenant_traceback(exc)
        if trace is not None:
            masked = masking.mask(trace, self._masked())  # before the cut: no half a value
            out["traceback"] = tracebacks.keep_end(masked, MAX_TRACEBACK)
        return out

    def _masked(self) -> list[str]:
        if self._secret_values is None:
            self._secret_values = masking.secret_values(self.secrets)
        return self._secret_values

    def fail(self, err: EngineError, step: str | None = None) -> NoReturn:
        """Record a fatal error (first one wins; catching it in `run` changes nothing)."""
        if self.fatal is None:
            self.fatal, self.fatal_step = err, step
        raise err

    def checked(self, step: str, make: Callable[[], Any]) -> Any:
        """Evaluate a step-option parser, turning its ValueError into a fatal error."""
        try:
            return make()
        except StepOptionsError as exc:
            self.fail(exc, step)
        except ValueError as exc:
            self.fail(StepOptionsError(str(exc)), step)

    # ------------------------------------------------------------------ journal
    def replaying(self) -> bool:
        return self.calls < self.replay_len

    def claim(self, name: str, kind: StepKind) -> StepRecord | None:
        """The record for this step call: replayed, new, or None when the batch is spent."""
        if not isinstance(name, str) or not name or len(name) > MAX_STEP_NAME:
            self.fail(
                StepOptionsError(
                    f"step names must be non-empty strings of at most {MAX_STEP_NAME} characters, "
                    f"got {name!r}"
                ),
                None,
            )
        if name.startswith(ROLLBACK_PREFIX):
            self.fail(
                StepOptionsError(
                    f"step name {name!r}: names starting with {ROLLBACK_PREFIX!r} are the "
                    "journal's names of rollbacks; choose another"
                ),
                None,
            )
        if name in self.names:
            self.fail(
                DuplicateStepNameError(
                    f"step name {name!r} is used twice; every step in an instance needs its "
                    "own name (add an index or a suffix, e.g. f'build-{i}')"
                ),
                name,
            )
        self.names.add(name)
        index = self.calls
        self.calls += 1
        if self.compensating and index >= self.forward_len:
            return None  # compensating: run() calls nothing new
        if self.read_only and index >= len(self.journal):
            return None  # a query's replay: nothing new
        if index < len(self.journal):
            rec = self.journal[index]
            if rec.name != name or rec.kind is not kind:
                self.fail(
                    NonDeterminismError(
                        f"replay diverged at step #{index + 1}: the journal has {rec.kind} "
                        f"{rec.name!r} but the code now calls {kind} {name!r}. Workflow code must "
                        "call the same steps in the same order on every replay (no randomness, "
                        "clock reads or external state outside step.do); running instances keep "
                        "their revision, so start a new instance for changed code"
                    ),
                    name,
                )
            return self._charge_lost(rec)
        if index >= self.limits.max_steps:
            self.fail(
                StepLimitExceeded(
                    f"step {name!r} would be step #{index + 1}, over the tenant's "
                    f"maxStepsPerInstance={self.limits.max_steps}; use fewer, larger steps or "
                    "raise the limit"
                ),
                name,
            )
        if self.budget_spent():
            return None
        rec = StepRecord(name=name, kind=kind, state=_initial(kind), started_at=self.now())
        self.journal.append(rec)
        self.changed = True
        return self._charge_lost(rec)

    def _charge_lost(self, rec: StepRecord) -> StepRecord:
        """Attempts of this step lost with their process are failed attempts: retry now,
        or error the step if its policy allows no more (step.do decides)."""
        lost = self.lost_attempts.get(rec.name)
        if (
            lost is None
            or rec.kind is not StepKind.DO
            or rec.state in FINAL_STATES
            or int(lost.get("attempts", 0)) <= rec.attempts
        ):
            return rec
        rec.attempts = int(lost["attempts"])
        rec.state, rec.error, rec.next_attempt_at = StepState.RETRYING, lost.get("error"), None
        rec.failed(rec.attempts, rec.error or {"name": "Lost"}, self.now())
        self.changed = True
        return rec

    async def claim_step(self, name: str, kind: StepKind) -> StepRecord:
        """`claim`, parking the step for the next advance when the batch budget is spent."""
        rec = self.claim(name, kind)
        if rec is None:
            halts = self.compensating or self.read_only
            await self.block(Blocker(name, "halt" if halts else "yield"))
        if (self.compensating or self.read_only) and rec.state not in FINAL_STATES:
            await self.halt(name)
        return rec

    async def halt(self, name: str) -> None:
        """Compensating: what run() did not finish stays unfinished (no attempt, no wait)."""
        await self.block(Blocker(name, "halt"))

    def register_query(self, name: str, fn: Callable[..., Any]) -> None:
        """`step.query`: a handler by name (registering a name again replaces it)."""
        self.checked(name, lambda: queries.check_name(name))
        if not callable(fn):
            self.fail(
                StepOptionsError(
                    f"query {name!r}: the handler must be a function, got {type(fn).__name__}"
                ),
                None,
            )
        if name not in self.queries and len(self.queries) >= queries.MAX_QUERIES:
            self.fail(
                StepOptionsError(
                    f"query {name!r}: an instance may register at most {queries.MAX_QUERIES} "
                    "queries; return several values from one handler instead"
                ),
                None,
            )
        self.queries[name] = fn

    def set_attributes(self, values: Mapping[Any, Any]) -> None:
        """`step.set_attributes`: kept for the advance's result, not journaled (a replay
        sets them again); a name the definition does not declare, or a value that cannot
        be a label, is fatal like a bad step option."""
        if self.read_only:
            return  # a query's replay: nothing leaves it but the answer
        for name, value in values.items():
            try:
                self.attributes[name] = to_set(name, value, self.declared_attributes)
            except SearchAttributeError as exc:
                self.fail(exc)

    def next_rollback(self) -> int:
        """The place of a step.do with a rollback that completes now: after every other."""
        return 1 + max((r.rollback or 0 for r in self.journal), default=0)

    def budget_spent(self) -> bool:
        return (
            self.finished_new >= self.limits.batch_steps
            or time.monotonic() - self.started >= self.limits.batch_seconds
        )

    def finished(self, rec: StepRecord) -> None:
        rec.finished_at = self.now()
        self.finished_new += 1
        self.changed = True

    # ------------------------------------------------------------------ outputs
    def keep(self, rec: StepRecord, value: Any) -> Any:
        """Store `value` as `rec`'s output; returns what the workflow sees (JSON-normalised)."""
        try:
            rec.output, rec.output_ref, seen = store(
                value,
                what=f"step {rec.name!r}",
                key=rec.name,
                cap=self.limits.inline_output_bytes,
                limit=self.limits.max_output_bytes,
                offload=self.offload,
            )
        except EngineError as exc:
            self.fail(exc, rec.name)
        return seen

    def recall(self, name: str) -> tuple[bool, Any]:
        """(True, value) when the store has this step's result from an earlier advance."""
        data = self.results.recall(name) if self.results is not None else None
        if data is None:
            return False, None
        return True, jsonsafe.loads(data)

    def remember(self, name: str, value: Any) -> None:
        """Keep a completed step's result in the store (JSON; what the journal keeps)."""
        if self.results is not None:
            self.results.record(name, encode(value, what=f"step {name!r}"))

    def output_of(self, rec: StepRecord) -> Any:
        if rec.output_ref is None:
            return rec.output
        return fetch(rec.output_ref, self.offload, what=f"step {rec.name!r}")

    def completed(self, rec: StepRecord, *, reopen_as: StepState) -> tuple[bool, Any]:
        """(True, output) of a completed record, else (False, None). A completed record
        whose offloaded output is missing or is not the bytes the journal's digest names
        (tenant code rewrote it) is reported, never handed to the workflow, and reopened
        as `reopen_as`: as if it had not completed."""
        if rec.state is not StepState.COMPLETE:
            return False, None
        try:
            return True, self.output_of(rec)
        except RecordRejected as exc:
            self.reject("output", rec.name, exc.problem)
            self.reopen(rec, reopen_as)
            return False, None

    def reject(self, record: str, step: str, problem: str) -> None:
        self.rejected.append({"record": record, "step": step, "problem": problem})

    def reopen(self, rec: StepRecord, state: StepState) -> None:
        """A completed record whose output was rejected, as if it had not completed: the
        step runs (or awaits its child) again, and the journal keeps the new output."""
        rec.state, rec.output, rec.output_ref, rec.error = state, None, None, None
        rec.finished_at = rec.next_attempt_at = None
        self.changed = True

    # ------------------------------------------------------------------ events
    def take_event(self, event_type: str) -> tuple[int, InboxEvent] | None:
        """The oldest unconsumed event of this type (buffered in arrival order)."""
        for index, event in enumerate(self.inbox):
            if event.type == event_type and index not in self.consumed:
                self.consumed.add(index)
                return index, event
        return None

    # ------------------------------------------------------------------ suspension
    async def block(self, blocker: Blocker) -> NoReturn:
        """Suspend this step for the rest of the advance; the outcome reports why."""
        self.blockers.append(blocker)
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable: blocked steps are cancelled, never resumed")


def _initial(kind: StepKind) -> StepState:
    return StepState.RUNNING if kind is StepKind.DO else StepState.WAITING
