"""One drive of one instance: what it read and what it decided, persisted in one place.

As Argo's `wfOperationCtx`: the decisions of a drive (a status update, an Event, when to
run again) accumulate on this object and `StatusWriter.persist` writes them once, at the
end, guarded by the resourceVersion that was read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, cast

from tenantflow import conditions
from tenantflow.controllers.instances.view import InstanceView
from tenantflow.engine.children import ChildStart
from tenantflow.shapes import InstanceStatus
from tenantflow.vocabulary import ConditionType, ObjectKey, Phase

Event = tuple[str, str, str]  # (type, reason, message)


@dataclass
class Drive:
    body: dict[str, Any]  # as read: its resourceVersion guards the write
    view: InstanceView
    now: dt.datetime
    status: InstanceStatus = field(
        default_factory=lambda: InstanceStatus()
    )  # as read, plus in-memory moves
    # status fields to write: a merge patch (None deletes a field), so a plain dict
    update: dict[str, Any] | None = None
    event: Event | None = None
    extends_journal: bool = False  # an advance's result: re-committed on a benign 409
    again: bool = False  # run again at once once written
    wake_at: dt.datetime | None = None  # run again then (or if `again` could not be written)
    written: dict[str, Any] | None = None  # the object as the write left it
    starts: tuple[ChildStart, ...] = ()  # children the advance waits on (started unless there)
    close_children: bool = False  # its active children are to be terminated (a reset)
    # search attributes the advance's code set (None: removed), checked: labels once the
    # status is written (StatusWriter.persist)
    attributes: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def of(cls, body: dict[str, Any], now: dt.datetime) -> Drive:
        view = InstanceView.decode(body)
        return cls(body=body, view=view, now=now, status=InstanceStatus(**view.status))

    @property
    def key(self) -> ObjectKey:
        return self.view.key

    def move(self, update: dict[str, Any]) -> None:
        """Status fields moved in memory before they are written (a start, a compensation
        begun): what the rest of the drive reads."""
        self.status.update(cast(InstanceStatus, update))

    def write(self, update: dict[str, Any], event: Event | None = None) -> None:
        self.update = {**(self.update or {}), **update}
        self.event = event or self.event

    def later(self, seconds: float) -> None:
        """Run again in `seconds`, or sooner if something else of this drive asked so (a
        drive run early only finds nothing to do; one run late strands what was due)."""
        when = self.now + dt.timedelta(seconds=seconds)
        self.wake_at = when if self.wake_at is None else min(self.wake_at, when)

    def condition(
        self,
        ctype: ConditionType,
        ok: bool,
        reason: str,
        message: str,
        phase: Phase | None = None,
        *,
        warn: bool = True,
    ) -> None:
        """Set one condition (written only if it changed; a False one posts a Warning
        unless `warn` is False: a wait that is still normal); `phase` is set too if the
        instance has none yet."""
        existing = (self.update or {}).get("conditions") or self.view.status.get("conditions")
        new = [conditions.ConditionUpdate(ctype, ok, reason, message)]
        merged = conditions.merge(existing, new, generation=self.view.generation)
        if merged == (existing or []):
            return
        update: dict[str, Any] = {"conditions": merged}
        if phase and not self.view.phase:
            update["phase"] = phase
        self.write(update, ("Warning", reason, message) if not ok and warn else None)
