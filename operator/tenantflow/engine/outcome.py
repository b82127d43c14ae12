"""What one `advance` ends with: the journal to persist plus exactly one outcome."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from tenantflow.engine.children import ChildStart
from tenantflow.engine.journal import StepRecord


@dataclass(frozen=True, slots=True)
class Complete:
    output: Any = None
    output_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Errored:
    error: dict[str, Any]  # {name, message, step?}


@dataclass(frozen=True, slots=True)
class Waiting:
    """Blocked on time (`wake_at`: sleep, retry backoff, wait timeout), events and/or
    children (each started unless it exists, then awaited)."""

    wake_at: dt.datetime | None
    event_types: frozenset[str]
    waiting_for: dict[str, Any]  # status.waitingFor: {kind, until?, eventType?, child?, step}
    children: tuple[ChildStart, ...] = ()


@dataclass(frozen=True, slots=True)
class Yielded:
    """The batch budget is spent: persist the journal, then advance again at once."""


@dataclass(frozen=True, slots=True)
class Compensating:
    """Rolling back (engine/compensation.py), not done: a rollback waits for its next
    attempt until `wake_at` (`waiting_for` says which), or (None) the batch budget is
    spent: persist, then advance again at once."""

    wake_at: dt.datetime | None
    waiting_for: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class RolledBack:
    """Every rollback ran: the instance ends as its trigger says (`error`: what run()
    raised, or a termination)."""

    error: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RollbackFailed:
    """A rollback is out of retries: the chain stopped there (`error`: its error, `step`
    the rollback's journal name); `trigger`: what began the compensation."""

    error: dict[str, Any]
    trigger: dict[str, Any]


Outcome = Complete | Errored | Waiting | Yielded | Compensating | RolledBack | RollbackFailed


@dataclass(slots=True)
class Advance:
    journal: list[StepRecord]
    outcome: Outcome
    changed: bool  # the journal differs from the input: persist it
    # (step, success|failure|timeout|recalled)
    executed: list[tuple[str, str]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    # stored records ignored as absent, to report ({record, step, problem})
    rejected: list[dict[str, str]] = field(default_factory=list)
    # the names of the query handlers run() registered (engine/queries.py): status.queries
    queries: list[str] = field(default_factory=list)
    # the search attributes run() set (step.set_attributes; None: removed), for the operator
    # to apply as the instance's labels (engine/attributes.py)
    attributes: dict[str, str | None] = field(default_factory=dict)
