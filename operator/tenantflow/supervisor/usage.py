"""Tenant.status.usage from what the operator observes, never by listing instances.

Listing every instance of a tenant each refresh costs O(instances) JSON per tenant every
few seconds: at 50,000 instances that alone saturates the API server. The instance driver
already sees every phase change and every start, so it keeps the counts.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable

from tenantflow.vocabulary import ACTIVE

WINDOW = 60.0  # seconds covered by startsLastMinute


class UsageTracker:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.active: Counter[str] = Counter()
        self.starts: defaultdict[str, deque[float]] = defaultdict(deque)

    def phase_changed(self, tenant: str, old: str | None, new: str | None) -> None:
        self.active[tenant] += (new in ACTIVE) - (old in ACTIVE)

    def started(self, tenant: str) -> None:
        self.starts[tenant].append(self.clock())

    def report(self, tenant: str, queued: int) -> dict[str, int]:
        """The status.usage fields (queued comes from admission, which owns the queue)."""
        recent, cutoff = self.starts[tenant], self.clock() - WINDOW
        while recent and recent[0] < cutoff:
            recent.popleft()
        return {
            "runningInstances": self.active[tenant],
            "queuedInstances": queued,
            "startsLastMinute": len(recent),
        }
