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
# Tenant.status.usage.storageBytes, and the key of an advance's answer that carries it: the
# tenant's SQLite file lives on the sandbox's volume, so only the sandbox can measure it
# (`TenantDatabase.size_bytes`, after each advance); the operator keeps the latest
STORAGE_BYTES = "storageBytes"


class UsageTracker:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.active: Counter[str] = Counter()
        self.starts: defaultdict[str, deque[float]] = defaultdict(deque)
        self.storage: dict[str, int] = {}

    def storage_measured(self, tenant: str, size: int) -> bool:
        """The sandbox measured the tenant's store; True when the figure moved."""
        moved = self.storage.get(tenant) != size
        self.storage[tenant] = size
        return moved

    def phase_changed(self, tenant: str, old: str | None, new: str | None) -> None:
        self.active[tenant] += (new in ACTIVE) - (old in ACTIVE)

    def started(self, tenant: str) -> None:
        self.starts[tenant].append(self.clock())

    def report(self, tenant: str, queued: int) -> dict[str, int]:
        """The status.usage fields (queued comes from admission, which owns the queue)."""
        recent, cutoff = self.starts[tenant], self.clock() - WINDOW
        while recent and recent[0] < cutoff:
            recent.popleft()
        measured = self.storage.get(tenant)  # none yet: the status keeps the one it has
        return {
            "runningInstances": self.active[tenant],
            "queuedInstances": queued,
            "startsLastMinute": len(recent),
            **({STORAGE_BYTES: measured} if measured is not None else {}),
        }
