"""Admission: per-tenant concurrency caps (FIFO queue) and start-rate token buckets.

Pure bookkeeping over instance keys; the instance controller feeds it every observed
phase (so it is rebuilt from the CRs after a restart) and asks it before starting one.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Literal

from tenantflow.supervisor.token_bucket import TokenBucket
from tenantflow.vocabulary import ACTIVE, FINISHED, Limits, ObjectKey

DEFAULT_STARTS_PER_SECOND = float(Limits.MAX_INSTANCE_STARTS_PER_SECOND)
DELETED = "Deleted"  # pseudo-phase: the instance object is gone
LENT = "Lent"  # pseudo-phase: a started instance that lent its slot to its children


@dataclass(frozen=True)
class Decision:
    verdict: Literal["start", "queued", "throttled"]
    wait: float = 0.0  # throttled: seconds until a start token is available
    position: int = 0  # queued: 1-based place in the tenant's FIFO


@dataclass
class _Tenant:
    max_concurrent: int
    starts: TokenBucket
    active: set[ObjectKey] = field(default_factory=set)
    queue: list[tuple[str, ObjectKey]] = field(default_factory=list)  # sorted (created, key)
    queued: dict[ObjectKey, str] = field(
        default_factory=dict
    )  # key -> created, for O(log n) lookups


class Admission:
    def __init__(self) -> None:
        self._tenants: dict[str, _Tenant] = {}

    def _tenant(
        self, tenant: str, max_concurrent: int | None = None, starts_per_second: float | None = None
    ) -> _Tenant:
        """The tenant's state; limits default to the CRD's until try_start brings the real
        ones (observe() may come first, e.g. while rebuilding after a restart)."""
        t = self._tenants.get(tenant)
        cap = max_concurrent if max_concurrent is not None else Limits.MAX_CONCURRENT_INSTANCES
        rate = starts_per_second if starts_per_second is not None else DEFAULT_STARTS_PER_SECOND
        if t is None:
            t = self._tenants[tenant] = _Tenant(cap, TokenBucket(rate, 2 * rate))
        elif max_concurrent is not None and (t.max_concurrent != cap or t.starts.rate != rate):
            t.max_concurrent = cap
            t.starts.reconfigure(rate, 2 * rate)
        return t

    def enqueue(self, tenant: str, key: ObjectKey, created: str) -> None:
        """Put an instance that has not started in its tenant's FIFO (restart rebuild)."""
        t = self._tenant(tenant)
        if key not in t.active and key not in t.queued:
            t.queued[key] = created
            bisect.insort(t.queue, (created, key))

    def observe(self, tenant: str, key: ObjectKey, phase: str | None) -> list[ObjectKey]:
        """Record an instance's phase (None/Queued: not started, no change; DELETED: gone;
        LENT: started, its slot lent); returns queued keys that may now try to start."""
        t = self._tenant(tenant)
        if phase in ACTIVE:
            t.active.add(key)
            self._dequeue(t, key)
            return []
        if phase in (DELETED, LENT) or phase in FINISHED:
            was_active = key in t.active
            t.active.discard(key)
            self._dequeue(t, key)
            if was_active:
                return [k for _, k in t.queue[: max(0, t.max_concurrent - len(t.active))]]
        return []

    def try_start(
        self,
        tenant: str,
        key: ObjectKey,
        created: str,
        *,
        max_concurrent: int,
        starts_per_second: float,
        resume: bool = False,
    ) -> Decision:
        """Start `key` now, or queue it (FIFO by creation) or throttle it. `resume`: it
        started before and lent its slot; taking one back costs no start token."""
        t = self._tenant(tenant, max_concurrent, starts_per_second)
        if key in t.active:
            return Decision("start")
        self.enqueue(tenant, key, created)
        position = bisect.bisect_left(t.queue, (t.queued[key], key)) + 1
        if position > t.max_concurrent - len(t.active):
            return Decision("queued", position=position)
        if not resume and not t.starts.try_take():
            return Decision("throttled", wait=t.starts.wait_time())
        t.active.add(key)
        self._dequeue(t, key)
        return Decision("start")

    def is_active(self, tenant: str, key: ObjectKey) -> bool:
        t = self._tenants.get(tenant)
        return t is not None and key in t.active

    def queued(self, tenant: str) -> list[ObjectKey]:
        t = self._tenants.get(tenant)
        return [k for _, k in t.queue] if t else []

    def queue_depth(self, tenant: str) -> int:
        t = self._tenants.get(tenant)
        return len(t.queue) if t else 0

    def active(self, tenant: str) -> int:
        t = self._tenants.get(tenant)
        return len(t.active) if t else 0

    @staticmethod
    def _dequeue(t: _Tenant, key: ObjectKey) -> None:
        created = t.queued.pop(key, None)
        if created is not None:
            del t.queue[bisect.bisect_left(t.queue, (created, key))]
