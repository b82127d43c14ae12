"""The journal: one record per step call, in call order, shaped like `status.steps`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from tenantflow import __version__
from tenantflow.durations import format_time, parse_time
from tenantflow.errors import TenantflowError
from tenantflow.shapes import StepEntry

# The format of these entries (status.steps, and what the tenant's history keeps of them),
# recorded as status.journalVersion when an instance starts. A change an older reader would
# misread (a field removed, renamed or given another meaning) raises it and comes with a
# conversion (tests/unit/test_api_compat.py; docs/operations.md, "Compatibility").
VERSION = 1


class JournalVersionError(TenantflowError):
    """A journal in a format this code does not read."""


def check_version(version: object) -> int:
    """The format of an instance's journal from its status.journalVersion (absent: 1, an
    instance started before it was recorded); one newer than this code reads is refused
    with what to run instead, never read as if it were ours."""
    if version is None:
        return 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise JournalVersionError(f"status.journalVersion {version!r} is not a format version")
    if version > VERSION:
        raise JournalVersionError(
            f"the journal is in format version {version}, which tenantflow {__version__} does "
            f"not read (it reads up to version {VERSION}): it was written by a later release. "
            f"Run an operator of a release after {__version__} that writes version {version} "
            "(docs/operations.md, 'Compatibility'); the instance is left as it is until then"
        )
    return version


class StepKind(StrEnum):
    DO = "do"
    SLEEP = "sleep"
    EVENT = "event"
    CHILD = "child"  # another instance of the tenant, started and awaited (step.child)
    # compensation (engine/compensation.py), after the steps run() called: never claimed
    COMPENSATE = "compensate"  # the compensation phase began: its trigger, its end
    ROLLBACK = "rollback"  # one completed step's rollback ("rollback:<step>")


FORWARD_KINDS = frozenset({StepKind.DO, StepKind.SLEEP, StepKind.EVENT, StepKind.CHILD})


class StepState(StrEnum):
    RUNNING = "Running"  # an attempt started; if found on replay it was interrupted: run again
    RETRYING = "Retrying"  # an attempt failed; the next one starts at nextAttemptAt
    WAITING = "Waiting"  # a sleep, an event wait or a child that has not finished
    COMPLETE = "Complete"
    ERRORED = "Errored"  # retries exhausted, NonRetryableError, or an event wait timed out


FINAL_STATES = frozenset({StepState.COMPLETE, StepState.ERRORED})

_TIME_FIELDS = {
    "started_at": "startedAt",
    "finished_at": "finishedAt",
    "until": "until",
    "next_attempt_at": "nextAttemptAt",
}
_PLAIN_FIELDS = {
    "attempts": "attempts",
    "output_ref": "outputRef",
    "error": "error",
    "event_type": "eventType",
    "event_index": "eventIndex",
    "child": "child",
    "revision": "revision",
    "failures": "failures",
    "rollback": "rollback",
}
FAILURES_KEPT = 3  # the last failed attempts of a step kept in its record, each ...
FAILURE_MESSAGE = 512  # ... with at most this much of its message


@dataclass(slots=True)
class StepRecord:
    """A step's durable state. `output` is meaningful only when Complete without outputRef."""

    name: str
    kind: StepKind
    state: StepState
    attempts: int = 0
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    output: Any = None
    output_ref: str | None = None
    error: dict[str, Any] | None = None
    until: dt.datetime | None = None  # sleep: wake time; event: timeout
    next_attempt_at: dt.datetime | None = None
    event_type: str | None = None
    event_index: int | None = None  # which inbox entry a completed event wait consumed
    child: str | None = None  # the child instance's name (step.child)
    # the revision a child step's plan written at runtime (step.child source=) was recorded
    # as, and its child pinned to: set by the operator, never written again on replay
    revision: int | None = None
    # its last failed attempts ({attempt, name, message, at}), kept after it succeeds
    failures: list[dict[str, Any]] | None = None
    # a completed step.do with a rollback: its place among such completions (1, 2, ...),
    # the order its rollback is undone in (newest first)
    rollback: int | None = None

    def failed(self, attempt: int, error: dict[str, Any], at: dt.datetime) -> None:
        """Keep one failed attempt (the last FAILURES_KEPT stay), whatever comes next."""
        entry = {
            "attempt": attempt,
            "name": str(error.get("name", "Error")),
            "message": str(error.get("message", ""))[:FAILURE_MESSAGE],
            "at": format_time(at),
        }
        self.failures = [*(self.failures or []), entry][-FAILURES_KEPT:]

    def to_dict(self) -> StepEntry:
        """camelCase, None fields left out: the exact `status.steps[]` shape."""
        out: dict[str, Any] = {"name": self.name, "kind": str(self.kind), "state": str(self.state)}
        for attr, key in _PLAIN_FIELDS.items():
            value = getattr(self, attr)
            if value is not None:
                out[key] = value
        for attr, key in _TIME_FIELDS.items():
            value = getattr(self, attr)
            if value is not None:
                out[key] = format_time(value)
        if self.state is StepState.COMPLETE and self.output_ref is None:
            out["output"] = self.output
        return cast(StepEntry, out)  # the keys of _PLAIN_FIELDS and _TIME_FIELDS (pinned)

    @classmethod
    def from_dict(cls, entry: StepEntry) -> StepRecord:
        data: Mapping[str, Any] = entry
        rec = cls(name=data["name"], kind=StepKind(data["kind"]), state=StepState(data["state"]))
        for attr, key in _PLAIN_FIELDS.items():
            if key in data:
                setattr(rec, attr, data[key])
        for attr, key in _TIME_FIELDS.items():
            if data.get(key):
                setattr(rec, attr, parse_time(data[key], field=f"steps[].{key}"))
        rec.output = data.get("output")
        return rec


def load(entries: list[StepEntry]) -> list[StepRecord]:
    return [StepRecord.from_dict(e) for e in entries]


def dump(records: list[StepRecord]) -> list[StepEntry]:
    return [r.to_dict() for r in records]
