"""Kubernetes-style conditions: lastTransitionTime moves only when status changes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from tenantflow.durations import format_time
from tenantflow.shapes import ConditionEntry
from tenantflow.vocabulary import ConditionType


@dataclass(frozen=True, slots=True)
class ConditionUpdate:
    """A condition as a controller decides it (status a bool, no timestamps); `merge` turns
    a list of them into the stored shape, the `api.common.Condition` the CRDs define."""

    type: str
    status: bool
    reason: str
    message: str = ""


def merge(
    existing: list[ConditionEntry] | None,
    new: list[ConditionUpdate],
    *,
    generation: int | None,
    now: dt.datetime | None = None,
) -> list[ConditionEntry]:
    """The conditions merged by type: `new` replaces those of its types (an unchanged status
    keeps its transition time), every other type stays as it was (never dropped)."""
    previous = {c.get("type"): c for c in existing or []}
    stamp = format_time((now or dt.datetime.now(dt.UTC)).replace(microsecond=0))
    decided: dict[str, ConditionEntry] = {}
    for cond in new:
        status: Literal["True", "False"] = "True" if cond.status else "False"
        old = previous.get(cond.type)
        decided[cond.type] = {
            "type": cond.type,
            "status": status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": old["lastTransitionTime"]
            if old and old.get("status") == status and old.get("lastTransitionTime")
            else stamp,
            "observedGeneration": generation,
        }
    kept = [decided.pop(str(c.get("type")), c) for c in existing or []]  # in place, by type
    return kept + list(decided.values())


def health(
    ready: bool, reason: str, message: str, *, reconciling: bool = False, stalled: bool = False
) -> list[ConditionUpdate]:
    """Ready, Reconciling and Stalled as kstatus reads them: Stalled=True is Failed,
    Reconciling=True (or Ready=False) is InProgress, Ready=True alone is Current."""
    return [
        ConditionUpdate(ConditionType.READY, ready, reason, message),
        ConditionUpdate(
            ConditionType.RECONCILING,
            reconciling,
            reason if reconciling else "Done",
            message if reconciling else "",
        ),
        ConditionUpdate(
            ConditionType.STALLED,
            stalled,
            reason if stalled else "NotStalled",
            message if stalled else "",
        ),
    ]


def only_abnormal(stored: list[ConditionEntry], normal: dict[str, bool]) -> list[ConditionEntry]:
    """`stored` without the conditions that are in their normal state (`normal`: type ->
    the status that says nothing): kstatus' abnormal-true pattern, for kinds that exist by
    the ten thousand, where each condition is bytes in etcd and in every watch-cache copy
    of the object. A condition reappears, with a new transition time, once it is not."""
    return [c for c in stored if normal.get(str(c.get("type"))) != (c.get("status") == "True")]


def find(stored: list[ConditionEntry] | None, ctype: str) -> ConditionEntry | None:
    """The stored condition of type `ctype`, or None."""
    return next((c for c in stored or [] if c.get("type") == ctype), None)
