"""Reset an instance to a step, or retry it from its failure (pure: status dicts in and
out).

`tenantflow reset INSTANCE --to-step NAME [--revision N]` cuts the journal before that
step and lets the instance continue from there, optionally on another revision (the fix);
`tenantflow retry INSTANCE` does the same from an Errored instance's failed step, keeping
every successful one; of a RollbackFailed instance it runs the failed rollback again and
resumes the compensation (nothing runs forward again). The request arrives as an
annotation stamped with an id, applied once; who asked, what and why are kept in
`status.resets` and said in an Event.

At-least-once, stated: every step from the cut on runs again, including any whose effects
already happened (their step bodies should be idempotent, docs/writing-workflows.md).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from tenantflow.durations import format_time
from tenantflow.engine.journal import StepKind
from tenantflow.shapes import InstanceStatus, StepEntry
from tenantflow.vocabulary import RESET_ANNOTATION, Phase

MAX_RESETS_KEPT = 20  # status.resets keeps the newest ones
MAX_REASON = 512


@dataclass(frozen=True)
class ResetRequest:
    """What the CLI asked: to a step (None: from the failed step, a retry)."""

    id: str
    to_step: str | None
    revision: int | None = None
    reason: str = ""
    by: str = ""

    @classmethod
    def parse(cls, annotations: dict[str, str] | None) -> ResetRequest | None:
        """The annotation's request; None when absent. A value the CLI would not write
        raises ValueError saying so."""
        raw = (annotations or {}).get(RESET_ANNOTATION)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
            ident = value["id"]
        except (ValueError, TypeError, KeyError):
            raise ValueError(
                f"annotation {RESET_ANNOTATION} must be JSON with an id (use `tenantflow "
                "reset` or `tenantflow retry`)"
            ) from None
        to_step, revision = value.get("toStep"), value.get("revision")
        if (
            not isinstance(ident, str)
            or (to_step is not None and not isinstance(to_step, str))
            or (revision is not None and (not isinstance(revision, int) or revision < 1))
        ):
            raise ValueError(
                f"annotation {RESET_ANNOTATION}: id must be a string, toStep a step name, "
                "revision a number from 1"
            )
        return cls(
            ident,
            to_step,
            revision,
            str(value.get("reason") or "")[:MAX_REASON],
            str(value.get("by") or "")[:253],
        )

    def annotation(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "toStep": self.to_step,
                "revision": self.revision,
                "reason": self.reason,
                "by": self.by,
            }
        )


@dataclass(frozen=True)
class Reset:
    """The status update a request makes (or why it is refused), and its Event."""

    update: dict[str, Any]
    event: tuple[str, str, str]


def applied(status: InstanceStatus, request: ResetRequest) -> bool:
    return any(r.get("id") == request.id for r in status.get("resets") or [])


def reset(
    status: InstanceStatus, request: ResetRequest, *, terminating: bool, now: dt.datetime
) -> Reset:
    """Cut the journal before the requested step (or the failed one) and run again; a
    request that cannot be applied is recorded as refused, with why, and changes nothing
    else. The caller checks `applied` first."""
    if request.to_step is None and status.get("phase") == Phase.ROLLBACK_FAILED:
        return _resume_rollbacks(status, request, now)
    steps = list(status.get("steps") or [])
    names = [s.get("name") for s in steps]
    problem, cut = None, len(steps)
    if status.get("phase") == Phase.TERMINATED or terminating:
        problem = "the instance is terminated (spec.terminate): start a new one instead"
    elif not status.get("revision"):
        problem = "the instance has not started yet: there is nothing to reset"
    elif request.to_step is None:
        if status.get("phase") != Phase.ERRORED:
            problem = f"retry needs an Errored instance; this one is {status.get('phase')}"
        failed = [i for i, s in enumerate(steps) if s.get("state") == "Errored"]
        cut = failed[0] if failed else len(steps)  # run() itself raised: from the end
    elif request.to_step not in names:
        older = (status.get("offloadedSteps") or {}).get("count") or 0
        problem = (
            f"step {request.to_step!r} is not in the journal (it has: "
            f"{', '.join(str(n) for n in names) or 'no steps'}"
            + (
                f"; its {older} oldest finished entries are kept in the tenant's history and "
                "cannot be reset to: restart the instance to run them again"
                if older
                else ""
            )
            + ")"
        )
    else:
        cut = names.index(request.to_step)
    record = {
        "id": request.id,
        "toStep": request.to_step if request.to_step is not None else _name(steps, cut),
        "fromRevision": status.get("revision"),
        "toRevision": request.revision or status.get("revision"),
        "reason": request.reason,
        "by": request.by,
        "at": format_time(now.replace(microsecond=0)),
        "stepsCut": 0 if problem else len(steps) - cut,
        **({"refused": problem} if problem else {"epoch": epoch(status) + 1}),
    }
    resets = [*(status.get("resets") or []), record][-MAX_RESETS_KEPT:]
    what = "retry" if request.to_step is None else f"reset to step {request.to_step}"
    who = f" by {request.by}" if request.by else ""
    if problem:
        message = f"{what}{who} refused: {problem}"
        return Reset({"resets": resets}, ("Warning", "ResetRefused", message))
    kept = {s.get("name") for s in steps[:cut]}
    lost = status.get("lostAttempts") or {}
    update = {
        "phase": Phase.RUNNING,
        "steps": steps[:cut],
        "stepCount": cut + ((status.get("offloadedSteps") or {}).get("count") or 0),
        "error": None,
        "output": None,
        "outputRef": None,
        "finishedAt": None,
        "waitingFor": None,
        "nextWakeAt": None,
        "revision": record["toRevision"],
        "lostAttempts": {name: None for name in lost if name not in kept} or None,
        "resets": resets,
    }
    if not update["lostAttempts"]:
        del update["lostAttempts"]
    message = (
        f"{what}{who}: {len(steps) - cut} journal entries cut, running revision "
        f"{record['toRevision']}"
        + (f" (was {record['fromRevision']})" if request.revision else "")
        + (f"; reason: {request.reason}" if request.reason else "")
    )
    return Reset(update, ("Normal", "Reset", message))


def _resume_rollbacks(status: InstanceStatus, request: ResetRequest, now: dt.datetime) -> Reset:
    """`tenantflow retry` of a RollbackFailed instance: the rollback that failed is taken
    out of the journal (it runs again, from its first attempt) and the compensation goes
    on from there (phase Compensating); every completed rollback stays done."""
    steps = list(status.get("steps") or [])
    failed = [
        s for s in steps if s.get("kind") == StepKind.ROLLBACK and s.get("state") == "Errored"
    ]
    kept = [
        _reopened(s) if s.get("kind") == StepKind.COMPENSATE else s
        for s in steps
        if not any(s is f for f in failed)
    ]
    which = str(failed[0].get("name")) if failed else None
    record = {
        "id": request.id,
        "toStep": which,
        "fromRevision": status.get("revision"),
        "toRevision": status.get("revision"),
        "reason": request.reason,
        "by": request.by,
        "at": format_time(now.replace(microsecond=0)),
        "stepsCut": len(failed),
        "epoch": epoch(status) + 1,
    }
    update = {
        "phase": Phase.COMPENSATING,
        "steps": kept,
        "stepCount": len(kept) + ((status.get("offloadedSteps") or {}).get("count") or 0),
        "error": None,
        "finishedAt": None,
        "waitingFor": None,
        "nextWakeAt": None,
        "resets": [*(status.get("resets") or []), record][-MAX_RESETS_KEPT:],
    }
    who = f" by {request.by}" if request.by else ""
    message = f"retry{who}: the rollbacks resume" + (f" with {which}" if which else "")
    if request.reason:
        message += f"; reason: {request.reason}"
    return Reset(update, ("Normal", "Reset", message))


def _reopened(entry: StepEntry) -> StepEntry:
    """The compensation's marker, under way again."""
    out = StepEntry(**entry)
    out.pop("finishedAt", None)
    out.pop("output", None)
    return out | {"state": "Running"}


def epoch(status: InstanceStatus) -> int:
    """How many resets were applied: a new epoch for the sandbox's store of completed
    steps' results (a step that runs again after a reset is not recalled) and for child
    names (its children start anew). Each applied record carries its epoch, so the count
    goes on growing once only the newest MAX_RESETS_KEPT records are kept."""
    applied = [r for r in status.get("resets") or [] if not r.get("refused")]
    return max([len(applied), *(int(r.get("epoch") or 0) for r in applied)])


def _name(steps: list[StepEntry], index: int) -> str | None:
    return str(steps[index].get("name")) if index < len(steps) else None
