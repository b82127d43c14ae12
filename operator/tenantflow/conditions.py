"""Kubernetes-style conditions: lastTransitionTime moves only when status changes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from tenantflow.durations import format_time


@dataclass(frozen=True, slots=True)
class ConditionUpdate:
    """A condition as a controller decides it (status a bool, no timestamps); `merge` turns
    a list of them into the stored shape, the `api.common.Condition` the CRDs define."""

    type: str
    status: bool
    reason: str
    message: str = ""


def merge(
    existing: list[dict[str, Any]] | None,
    new: list[ConditionUpdate],
    *,
    generation: int | None,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """New condition list; entries whose status is unchanged keep their transition time."""
    previous = {c.get("type"): c for c in existing or []}
    stamp = format_time((now or dt.datetime.now(dt.UTC)).replace(microsecond=0))
    out = []
    for cond in new:
        status = "True" if cond.status else "False"
        old = previous.get(cond.type)
        out.append(
            {
                "type": cond.type,
                "status": status,
                "reason": cond.reason,
                "message": cond.message,
                "lastTransitionTime": old["lastTransitionTime"]
                if old and old.get("status") == status and old.get("lastTransitionTime")
                else stamp,
                "observedGeneration": generation,
            }
        )
    return out
