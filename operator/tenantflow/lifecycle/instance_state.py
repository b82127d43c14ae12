"""The instance state machine as pure functions over `status` dicts.

Queued ──start──► Running ◄──────────► Waiting (sleep / event / retry backoff)
   │                 │  ▲ suspend/resume    │
   │                 ▼  │                   │
   │               Paused                   │
   └──terminate──► Terminated ◄─────────────┘   Running ──► Complete | Errored

Compensation (engine/compensation.py): a failure that owes rollbacks, or a termination
with rollback, goes through Compensating (the rollbacks, newest first) to Errored (or
Terminated); a rollback out of retries ends RollbackFailed, which `tenantflow retry`
takes back to Compensating.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from tenantflow import conditions
from tenantflow.api.instance import WaitingFor
from tenantflow.conditions import ConditionUpdate
from tenantflow.durations import format_time, parse_time
from tenantflow.engine import journal
from tenantflow.engine.compensation import TERMINATED, compensating_in, marker, owed_in
from tenantflow.engine.journal import StepKind, StepState
from tenantflow.engine.outcome import (
    Compensating,
    Complete,
    Errored,
    Outcome,
    RollbackFailed,
    RolledBack,
    Waiting,
)
from tenantflow.engine.state import InboxEvent
from tenantflow.shapes import InstanceStatus, StepEntry
from tenantflow.vocabulary import ConditionType, Phase

MAX_STATUS_BYTES = 1_000_000  # etcd's limit is 1.5 MiB for the whole object
# every key status.waitingFor may hold: the status is written as a merge patch, which keeps
# a key the patch does not name, so a wait names them all (None removes one) or a sleep
# after a child wait would keep the `child` of the wait before
_WAITING_FOR_KEYS = tuple(f.alias or name for name, f in WaitingFor.model_fields.items())


def inbox(
    events: list[dict[str, Any]], seen: list[str], now: dt.datetime
) -> tuple[list[InboxEvent], list[str]]:
    """spec.events with their arrival times; events new to us are stamped `now`."""
    stamps = list(seen[: len(events)]) + [format_time(now)] * max(0, len(events) - len(seen))
    return [
        InboxEvent(e["type"], e.get("payload"), parse_time(t))
        for e, t in zip(events, stamps, strict=True)
    ], stamps


def pinned(status: InstanceStatus, *extra: str) -> dict[str, Any]:
    """The fields that pin an instance's run (kept across every status write)."""
    keys = ("revision", "startedAt", "journalVersion", *extra)
    held: Mapping[str, Any] = status
    return {k: held[k] for k in keys if k in held}


def started(revision: int, now: dt.datetime) -> dict[str, Any]:
    return {
        "phase": Phase.RUNNING,
        "revision": revision,
        "startedAt": format_time(now),
        "journalVersion": journal.VERSION,  # the format its journal is written in
    }


def journal_refusal(status: InstanceStatus) -> str | None:
    """Why this operator must not touch the instance's journal (written in a format newer
    than it reads, by a later release it was rolled back from), or None."""
    try:
        journal.check_version(status.get("journalVersion"))
    except journal.JournalVersionError as exc:
        return str(exc)
    return None


def finished(phase: str, now: dt.datetime, **fields: Any) -> dict[str, Any]:
    return {
        "phase": phase,
        "finishedAt": format_time(now),
        "waitingFor": None,
        "nextWakeAt": None,
        **fields,
    }


def after_advance(
    result: dict[str, Any],
    outcome: Outcome,
    *,
    seen: list[str],
    now: dt.datetime,
    terminating: bool = False,
) -> dict[str, Any]:
    """Status fields to write after one advance (merge-patch: None removes a field);
    `outcome` is the result's, decoded once (`outcome_from_wire`). `terminating`: the
    instance is being terminated with rollback (spec.terminate): the operator's word, not
    the sandbox's, decides that its rolled-back end is Terminated."""
    journal, kept = result["journal"], result.get("offloaded")
    out: dict[str, Any] = {"steps": journal, "eventsSeen": seen}
    if isinstance(kept, dict) and isinstance(kept.get("count"), int) and kept["count"] > 0:
        out["offloadedSteps"] = {"count": kept["count"], "digest": str(kept.get("digest"))}
    out["stepCount"] = len(journal) + offloaded_count(out)
    if isinstance(outcome, RolledBack):
        out |= (
            finished(Phase.TERMINATED, now)
            if terminating
            else finished(Phase.ERRORED, now, error=outcome.error)
        )
    elif isinstance(outcome, RollbackFailed):
        out |= finished(Phase.ROLLBACK_FAILED, now, error=outcome.error)
    elif isinstance(outcome, Compensating):
        waiting = outcome.waiting_for
        out |= {
            "phase": Phase.COMPENSATING,
            "waitingFor": dict.fromkeys(_WAITING_FOR_KEYS) | waiting if waiting else None,
            "nextWakeAt": format_time(outcome.wake_at) if outcome.wake_at else None,
        }
    elif isinstance(outcome, Complete):
        out |= finished(Phase.COMPLETE, now, output=outcome.output, outputRef=outcome.output_ref)
    elif isinstance(outcome, Errored):
        out |= finished(Phase.ERRORED, now, error=outcome.error)
    elif isinstance(outcome, Waiting):
        out |= {
            "phase": Phase.WAITING,
            "waitingFor": dict.fromkeys(_WAITING_FOR_KEYS) | outcome.waiting_for,
            "nextWakeAt": format_time(outcome.wake_at) if outcome.wake_at else None,
        }
    else:  # Yielded: more to do right away
        out |= {"phase": Phase.RUNNING, "waitingFor": None, "nextWakeAt": None}
    if len(json.dumps(out, separators=(",", ":"))) > MAX_STATUS_BYTES:
        return finished(
            Phase.ERRORED,
            now,
            error={
                "name": "StatusTooLarge",
                "message": f"the journal would exceed {MAX_STATUS_BYTES} bytes of status; return "
                "smaller step outputs (large ones go to env.db) or use fewer steps",
            },
        )
    return out


def offloaded_count(status: dict[str, Any]) -> int:
    """Journal entries the tenant's history keeps in front of `status.steps`."""
    count = (status.get("offloadedSteps") or {}).get("count")
    return count if isinstance(count, int) and count > 0 else 0


def needs_advance(
    status: InstanceStatus,
    events: list[dict[str, Any]],
    now: dt.datetime,
    *,
    children_changed: bool = False,
) -> bool:
    """False when a Waiting instance has nothing new: its wake-up is ahead, no new event,
    and (`children_changed`, which only a read of its children can tell) none of the
    children it awaits finished or went missing."""
    if status.get("phase") == Phase.COMPENSATING:  # a rollback's retry backoff, or go on
        wake = status.get("nextWakeAt")
        return wake is None or parse_time(wake) <= now
    if status.get("phase") != Phase.WAITING:
        return True
    if children_changed or len(events) > len(status.get("eventsSeen") or []):
        return True
    wake = status.get("nextWakeAt")
    if wake is None:
        return not awaited_steps(status.get("steps") or [])
    return parse_time(wake) <= now


def begin_compensation(
    status: InstanceStatus, trigger: dict[str, Any], now: dt.datetime
) -> dict[str, Any] | None:
    """The status update that begins a compensation the operator decides on (a termination
    with rollback, a sandbox that keeps crashing): the journal's marker, phase
    Compensating; the next advance runs the rollbacks. None when there is nothing to roll
    back (no completed step declared one) or a compensation is under way already."""
    steps = list(status.get("steps") or [])
    if compensating_in(steps) or not owed_in(steps):
        return None
    steps.append(marker(trigger, now))
    return {
        "phase": Phase.COMPENSATING,
        "steps": steps,
        "stepCount": len(steps),
        "waitingFor": None,
        "nextWakeAt": None,
    }


def termination(by: str) -> dict[str, Any]:
    """The trigger of a compensation an operator asked for with spec.terminate."""
    return {"name": TERMINATED, "message": f"terminated with rollback by {by}"}


def awaited_steps(steps: list[StepEntry]) -> list[str]:
    """The steps of a journal whose child is awaited (`step.child` not finished yet)."""
    return [
        str(e.get("name"))
        for e in steps
        if e.get("kind") == StepKind.CHILD and e.get("state") == StepState.WAITING
    ]


def lends_slot(status: InstanceStatus) -> bool:
    """A Waiting instance that awaits children lends its concurrency slot to them (a
    parent holding the tenant's last slot would otherwise wait forever on a child queued
    behind it); it takes a slot again, in creation order, when it has to run."""
    return status.get("phase") == Phase.WAITING and bool(awaited_steps(status.get("steps") or []))


MAX_LOST_RECORDS = 16  # steps with lost attempts on record (the runner reports up to 64)
MAX_LOST_NAME = 253  # characters of a step's name (the runner keeps no longer ones)
MAX_LOST_REASON = 64  # characters of the cause's name
MAX_LOST_MESSAGE = 1024  # characters of the cause's message
# so status.lostAttempts never holds more than about MAX_LOST_RECORDS * 1.5 KB
MAX_LOST_BYTES = MAX_LOST_RECORDS * (MAX_LOST_NAME + MAX_LOST_REASON + MAX_LOST_MESSAGE + 100)


def charge_lost_attempts(
    recorded: dict[str, Any],
    journal: list[StepEntry],
    lost: dict[str, int],
    cause: dict[str, str],
) -> dict[str, Any]:
    """`status.lostAttempts` after step attempts whose process was killed (the kernel's
    memory limit, the advance's deadline): each is a failed attempt with `cause`, which the
    next advance applies when the step is called (kept apart from the journal, whose
    entries must stay in call order). Only `do` steps that have not finished are charged.

    `lost` comes from the sandbox, where tenant code can forge it: at worst it fails its
    own instance's unfinished steps, and the record stays bounded (MAX_LOST_RECORDS steps,
    each name, reason and message capped: MAX_LOST_BYTES in all); steps already on record
    keep their place, new ones are taken in name order while there is room. The result is
    a merge patch: a record dropped from `recorded` is written as None."""
    final = {str(StepState.COMPLETE), str(StepState.ERRORED)}
    kinds = {
        e.get("name"): (e.get("kind"), e.get("state"), e.get("attempts") or 0) for e in journal
    }
    error = {
        "name": str(cause.get("name"))[:MAX_LOST_REASON],
        "message": str(cause.get("message"))[:MAX_LOST_MESSAGE],
    }
    out = _bounded_lost(recorded)
    for name, attempt in sorted(lost.items()):
        kind, phase, attempts = kinds.get(name, (str(StepKind.DO), None, 0))
        if kind != StepKind.DO or phase in final or not 0 < len(name) <= MAX_LOST_NAME:
            continue
        if name not in out and len(out) >= MAX_LOST_RECORDS:
            continue
        before = int((out.get(name) or {}).get("attempts") or 0)
        out[name] = {"attempts": max(before, int(attempts), int(attempt)), "error": error}
    return {**{name: None for name in recorded if name not in out}, **out}


def unapplied_lost_attempts(
    recorded: dict[str, Any], journal: list[StepEntry]
) -> dict[str, Any] | None:
    """What of `status.lostAttempts` the journal does not hold yet, after an advance, as a
    merge patch (None: nothing is left, which deletes the field; a record the journal
    holds, or whose step finished, becomes None). Records beyond the bounds go too."""
    final = {str(StepState.COMPLETE), str(StepState.ERRORED)}
    applied = {e.get("name"): int(e.get("attempts") or 0) for e in journal}
    finished = {e.get("name") for e in journal if e.get("state") in final}
    left = {
        name: entry
        for name, entry in _bounded_lost(recorded).items()
        if name not in finished and applied.get(name, 0) < int(entry.get("attempts") or 0)
    }
    if not left:
        return None
    return {**{name: None for name in recorded if name not in left}, **left}


def _bounded_lost(recorded: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The well-formed records of `recorded` within the bounds (the first
    MAX_LOST_RECORDS by name): a status written before the bounds, or by hand, is
    brought back within them."""
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(recorded):
        entry = recorded[name]
        if len(out) >= MAX_LOST_RECORDS:
            break
        if not isinstance(entry, dict) or not 0 < len(name) <= MAX_LOST_NAME:
            continue
        attempts, error = entry.get("attempts"), entry.get("error")
        if type(attempts) is not int or attempts < 1 or not isinstance(error, dict):
            continue
        out[name] = {
            "attempts": attempts,
            "error": {
                "name": str(error.get("name") or "Lost")[:MAX_LOST_REASON],
                "message": str(error.get("message", ""))[:MAX_LOST_MESSAGE],
            },
        }
    return out


# A WorkflowInstance keeps only the conditions that say something (issue 34: its status
# is paid for per instance by the control plane): Ready always (`kubectl wait`), the
# others only away from these statuses
QUIET_CONDITIONS: dict[str, bool] = {
    ConditionType.RECONCILING: False,
    ConditionType.STALLED: False,
    ConditionType.SANDBOX_REACHABLE: True,
    ConditionType.ADMITTED: True,
}


def health(phase: str | None, error: dict[str, Any] | None) -> list[ConditionUpdate]:
    """Ready / Reconciling / Stalled from the phase: `kubectl wait --for=condition=Ready`
    returns when the instance completed, and GitOps tools see Errored and Terminated as
    failed (Stalled), anything still under way as in progress."""
    if phase == Phase.COMPLETE:
        return conditions.health(True, "Complete", "the workflow completed")
    if phase == Phase.ROLLBACK_FAILED:
        err = error or {}
        message = (
            f"{err.get('step') or 'a rollback'} failed: {err.get('name')}: "
            f"{err.get('message') or ''}"
        )[:1024] + "; fix the cause, then resume the rollbacks (tenantflow retry)"
        return conditions.health(False, "RollbackFailed", message, stalled=True)
    if phase in (Phase.ERRORED, Phase.TERMINATED):
        err = error or {}
        reason = str(err.get("name") or phase) if phase == Phase.ERRORED else "Terminated"
        message = str(err.get("message") or f"the instance is {phase}")[:1024]
        if phase == Phase.ERRORED:
            message += "; fix the cause, then restart the instance (tenantflow restart)"
        return conditions.health(False, _camel(reason), message, stalled=True)
    now = phase or Phase.QUEUED
    return conditions.health(False, now, f"the instance is {now}", reconciling=True)


def _camel(reason: str) -> str:
    """An error's name as a condition reason: letters and digits, from a letter (an
    exception class name already is; anything else tenant code made up is cleaned)."""
    cleaned = "".join(ch for ch in reason if ch.isascii() and ch.isalnum())[:128]
    return cleaned if cleaned[:1].isalpha() else "Errored"
