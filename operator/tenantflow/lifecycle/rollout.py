"""Progressive rollout of a definition's new revision, as pure functions (no Kubernetes).

With `spec.rollout`, a new revision does not reach every new instance at once: it is a
canary that new instances pick by weight (`steps`, in percent), deterministically by
instance name, while the others keep running the stable revision. The operator tallies the
canary's finished instances (Complete against Errored); once `minInstances` of them finish
at a step it moves to the next, past the last one it is promoted (stable), and as soon as
the error rate over `minInstances` or more crosses `maxErrorRate` it is rolled back.

The weight is a share of instance names, not a quota: each name falls in a bucket 0..99
(`bucket`, by its hash), and the canary runs the names below the weight, so a handful of
instances may all land on one side (six at 50 %: all on the canary one time in 64). The
pick is made when an instance starts (is admitted, and its revision pinned in its status),
by the weight at that moment, not at its creation: an instance created while the canary
had 50 % that starts after a step to 100 % (late, or Queued) runs the canary, and the
instances of one burst can bring that step about themselves once `minInstances` of them
finish. The steps rise (the CRD's rule), so while a rollout progresses a name the canary
has at one step it has at every later one; a rollback or an abort sends every new
instance to the stable revision.

Everything here reads and writes `status.rollout` (the operator's, never the Git-owned
spec) and the commands of `tenantflow rollout promote|abort`, which arrive as an annotation
stamped with an id so that each is applied once however often the object is re-read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from tenantflow.durations import format_time, parse_time
from tenantflow.vocabulary import ROLLOUT_COMMAND_ANNOTATION, Phase, RolloutDefaults, RolloutPhase

PROMOTE, PROMOTE_FULL, ABORT = "promote", "promote-full", "abort"
ACTIONS = (PROMOTE, PROMOTE_FULL, ABORT)
HOLDING = frozenset({RolloutPhase.PROGRESSING, RolloutPhase.PAUSED})  # not yet decided

Event = tuple[str, str, str]  # (type, reason, message) of a Kubernetes Event


def bucket(instance: str, canary: int) -> int:
    """0..99, stable for an instance name: below the weight, the instance runs the canary.
    Salted with the canary's number so that each rollout samples different names."""
    digest = hashlib.sha256(f"{canary}/{instance}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


@dataclass(frozen=True)
class Assignment:
    """Which revision a new instance of a definition runs."""

    stable: int
    canary: int | None = None
    weight: int = 0

    def revision_for(self, instance: str) -> int:
        """The canary when the name's bucket is below the weight (never at 0 %, always at
        100 %), else the stable revision; pinned by the instance when it starts."""
        if self.canary is not None and bucket(instance, self.canary) < self.weight:
            return self.canary
        return self.stable

    @classmethod
    def of(cls, status: dict[str, Any]) -> Assignment | None:
        """From a definition's status (None while it has no active revision)."""
        active = status.get("activeRevision")
        if active is None:
            return None
        roll = status.get("rollout") or {}
        if roll.get("phase") != RolloutPhase.PROGRESSING:
            return cls(int(active))
        return cls(int(active), int(roll["revision"]), int(roll.get("weight") or 0))


@dataclass(frozen=True)
class Plan:
    """spec.rollout, decoded."""

    steps: tuple[int, ...] = RolloutDefaults.STEPS
    min_instances: int = RolloutDefaults.MIN_INSTANCES
    max_error_rate: float = RolloutDefaults.MAX_ERROR_RATE

    @classmethod
    def of(cls, spec: dict[str, Any] | None) -> Plan | None:
        if not spec:
            return None
        return cls(
            tuple(spec.get("steps") or RolloutDefaults.STEPS),
            int(spec.get("minInstances", RolloutDefaults.MIN_INSTANCES)),
            float(spec.get("maxErrorRate", RolloutDefaults.MAX_ERROR_RATE)),
        )


@dataclass(frozen=True)
class Command:
    """`tenantflow rollout promote|abort`, as its annotation holds it."""

    action: str
    revision: int
    id: str

    @classmethod
    def parse(cls, annotations: dict[str, str] | None) -> Command | None:
        """The annotation's command; None when absent. A value the CLI would not write
        raises ValueError saying so (the caller reports it, nothing is applied)."""
        raw = (annotations or {}).get(ROLLOUT_COMMAND_ANNOTATION)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
            action, revision, ident = value["action"], value["revision"], value["id"]
        except (ValueError, TypeError, KeyError):
            raise ValueError(
                f"annotation {ROLLOUT_COMMAND_ANNOTATION} must be JSON with action, revision and "
                "id (use `tenantflow rollout promote|abort`)"
            ) from None
        if action not in ACTIONS or not isinstance(revision, int) or not isinstance(ident, str):
            raise ValueError(
                f"annotation {ROLLOUT_COMMAND_ANNOTATION}: action must be one of "
                f"{', '.join(ACTIONS)}, revision a number, id a string"
            )
        return cls(action, revision, ident)

    def annotation(self) -> str:
        return json.dumps({"action": self.action, "revision": self.revision, "id": self.id})


@dataclass(frozen=True)
class Outcome:
    """One instance of the definition, as the tally reads it."""

    revision: int | None
    phase: str | None
    started_at: str | None


@dataclass(frozen=True)
class Tally:
    complete: int = 0
    errored: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.errored

    @classmethod
    def of(cls, outcomes: list[Outcome], revision: int, since: str) -> Tally:
        """Finished instances of `revision` started at or after `since` (terminated ones
        say nothing about the code and are not counted)."""
        start = parse_time(since)
        phases = [
            o.phase
            for o in outcomes
            if o.revision == revision and o.started_at and parse_time(o.started_at) >= start
        ]
        return cls(
            phases.count(Phase.COMPLETE),
            phases.count(Phase.ERRORED) + phases.count(Phase.ROLLBACK_FAILED),
        )


@dataclass(frozen=True)
class RolloutState:
    """status.rollout: the newest rollout, kept after it ends (what happened to it)."""

    revision: int
    from_revision: int
    phase: RolloutPhase
    step: int  # index into the plan's steps
    weight: int
    started_at: str  # the tally's window (restarted when a promote resumes a rollback)
    step_started_at: str
    complete: int = 0
    errored: int = 0
    message: str = ""
    last_command: str | None = None

    @classmethod
    def of(cls, status: dict[str, Any] | None) -> RolloutState | None:
        if not status:
            return None
        return cls(
            revision=int(status["revision"]),
            from_revision=int(status["fromRevision"]),
            phase=RolloutPhase(status["phase"]),
            step=int(status.get("step") or 0),
            weight=int(status.get("weight") or 0),
            started_at=status["startedAt"],
            step_started_at=status.get("stepStartedAt") or status["startedAt"],
            complete=int(status.get("complete") or 0),
            errored=int(status.get("errored") or 0),
            message=status.get("message") or "",
            last_command=status.get("lastCommand"),
        )

    def to_status(self) -> dict[str, Any]:
        """As stored (no None values: a merge patch would delete them, and the next read
        would differ from what was decided)."""
        fields = {
            "revision": self.revision,
            "fromRevision": self.from_revision,
            "phase": str(self.phase),
            "step": self.step,
            "weight": self.weight,
            "startedAt": self.started_at,
            "stepStartedAt": self.step_started_at,
            "complete": self.complete,
            "errored": self.errored,
            "message": self.message,
            "lastCommand": self.last_command,
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True)
class Verdict:
    stable: int | None  # the stable revision after this decision
    state: RolloutState | None
    events: list[Event]


def decide(
    prev: RolloutState | None,
    *,
    stable: int | None,
    target: int | None,
    plan: Plan | None,
    held: str | None,
    outcomes: list[Outcome],
    command: Command | None,
    now: dt.datetime,
) -> Verdict:
    """The rollout after one look at the definition.

    `stable` is the revision every new instance ran so far, `target` the revision of the
    source as it is now (None while it does not check), `held` what pins a revision (the
    rollout waits), `outcomes` the definition's instances."""
    stamp = format_time(now.replace(microsecond=0))
    events: list[Event] = []
    if target is None or target == stable or stable is None:
        # nothing new to roll out: the first revision is stable at once; a source that went
        # back to the stable revision ends a rollout still underway
        if prev is not None and prev.phase in HOLDING and target is not None:
            prev = _end(prev, RolloutPhase.SUPERSEDED, f"the source is revision {target} again")
            events.append(("Normal", "RolloutSuperseded", prev.message))
        return Verdict(stable if stable is not None else target, prev, events)
    if prev is not None and prev.revision != target and prev.phase in HOLDING:
        prev = _end(prev, RolloutPhase.SUPERSEDED, f"the source is revision {target} now")
        events.append(("Normal", "RolloutSuperseded", prev.message))
    if plan is None:  # no spec.rollout: the new revision is stable at once
        if prev is not None and prev.revision == target and prev.phase in HOLDING:
            prev = _end(prev, RolloutPhase.PROMOTED, "promoted: spec.rollout was removed")
            events.append(("Normal", "RolloutPromoted", prev.message))
        return Verdict(target, prev, events)
    state = prev
    if state is None or state.revision != target:
        state = RolloutState(
            target, stable, RolloutPhase.PROGRESSING, 0, plan.steps[0], stamp, stamp
        )
        events.append(
            (
                "Normal",
                "RolloutStarted",
                f"revision {target} gets {plan.steps[0]}% of new instances; revision "
                f"{stable} the rest",
            )
        )
    state, said = _apply(state, command, plan, stamp)
    events += said
    state, said = _hold(state, held, stamp)
    events += said
    if state.phase == RolloutPhase.PROGRESSING:
        state, said = _judge(state, plan, outcomes, stamp)
        events += said
    return Verdict(target if state.phase == RolloutPhase.PROMOTED else stable, state, events)


def _end(state: RolloutState, phase: RolloutPhase, why: str) -> RolloutState:
    weight = 100 if phase == RolloutPhase.PROMOTED else 0
    message = f"revision {state.revision} {why}"
    return dataclasses.replace(state, phase=phase, weight=weight, message=message)


def _apply(
    state: RolloutState, command: Command | None, plan: Plan, stamp: str
) -> tuple[RolloutState, list[Event]]:
    """A CLI command meant for this rollout, once."""
    if command is None or command.id == state.last_command or command.revision != state.revision:
        return state, []
    state = dataclasses.replace(state, last_command=command.id)
    if command.action == ABORT:
        if state.phase not in HOLDING:
            return state, []
        state = _end(
            state,
            RolloutPhase.ABORTED,
            f"aborted by `tenantflow rollout abort`: new instances run revision "
            f"{state.from_revision}; `tenantflow rollout promote` resumes it",
        )
        return state, [("Warning", "RolloutAborted", state.message)]
    if state.phase == RolloutPhase.PROMOTED:
        return state, []
    if command.action == PROMOTE_FULL or (
        state.phase == RolloutPhase.PROGRESSING and state.step + 1 >= len(plan.steps)
    ):
        state = _end(state, RolloutPhase.PROMOTED, "promoted by `tenantflow rollout promote`")
        return state, [("Normal", "RolloutPromoted", state.message)]
    # promote: the next step, or (rolled back or aborted) resume at the same step with a
    # fresh window, so the errors that stopped it do not stop it again at once
    resumed = state.phase in (RolloutPhase.ROLLED_BACK, RolloutPhase.ABORTED)
    step = state.step if resumed else state.step + 1
    state = dataclasses.replace(
        state,
        phase=RolloutPhase.PROGRESSING,
        step=step,
        weight=plan.steps[step],
        started_at=stamp if resumed else state.started_at,
        step_started_at=stamp,
    )
    verb = "resumed" if resumed else "promoted"
    message = f"revision {state.revision} {verb} to {state.weight}% by `tenantflow rollout promote`"
    return state, [("Normal", "RolloutStepped", message)]


def _hold(state: RolloutState, held: str | None, stamp: str) -> tuple[RolloutState, list[Event]]:
    """A pin holds a rollout underway (Paused) until it goes; the step's window restarts."""
    if held and state.phase == RolloutPhase.PROGRESSING:
        state = dataclasses.replace(
            state,
            phase=RolloutPhase.PAUSED,
            message=f"revision {state.revision} held at {state.weight}%: {held}; the rollout "
            "goes on when the pin goes",
        )
        return state, [("Normal", "RolloutPaused", state.message)]
    if not held and state.phase == RolloutPhase.PAUSED:
        state = dataclasses.replace(state, phase=RolloutPhase.PROGRESSING, step_started_at=stamp)
        return state, [("Normal", "RolloutResumed", f"revision {state.revision} rolls out again")]
    return state, []


def _judge(
    state: RolloutState, plan: Plan, outcomes: list[Outcome], stamp: str
) -> tuple[RolloutState, list[Event]]:
    """Roll back above the error rate, else move on once the step saw enough finish."""
    total = Tally.of(outcomes, state.revision, state.started_at)
    at_step = Tally.of(outcomes, state.revision, state.step_started_at)
    state = dataclasses.replace(state, complete=total.complete, errored=total.errored)
    rate = total.errored / total.finished if total.finished else 0.0
    if total.finished >= plan.min_instances and rate > plan.max_error_rate:
        state = _end(
            state,
            RolloutPhase.ROLLED_BACK,
            f"rolled back to revision {state.from_revision}: {total.errored} of "
            f"{total.finished} instances errored ({rate:.0%} > "
            f"maxErrorRate {plan.max_error_rate:.0%}); fix the code and apply it, or "
            "`tenantflow rollout promote` to resume it",
        )
        return state, [("Warning", "RolloutRolledBack", state.message)]
    if at_step.finished >= plan.min_instances:
        if state.step + 1 >= len(plan.steps):
            state = _end(
                state,
                RolloutPhase.PROMOTED,
                f"promoted: {total.complete} complete and {total.errored} errored during the "
                "rollout; every new instance runs it",
            )
            return state, [("Normal", "RolloutPromoted", state.message)]
        step = state.step + 1
        state = dataclasses.replace(
            state, step=step, weight=plan.steps[step], step_started_at=stamp
        )
        message = f"revision {state.revision} gets {state.weight}% of new instances"
        return dataclasses.replace(state, message=message), [("Normal", "RolloutStepped", message)]
    message = (
        f"revision {state.revision} gets {state.weight}% of new instances (step "
        f"{state.step + 1} of {len(plan.steps)}): {at_step.finished} of {plan.min_instances} "
        f"finished at this step; {total.errored} of {total.finished} errored so far "
        f"(rolled back above {plan.max_error_rate:.0%})"
    )
    return dataclasses.replace(state, message=message), []
