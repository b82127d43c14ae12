"""Fair dispatch to sandboxes: a fixed number of slots handed out round-robin by tenant.

A tenant with thousands of waiting advances gets one slot per turn like everyone else,
so another tenant's single advance waits at most one turn. A tenant also holds at most
`per_tenant` slots at once: a tenant whose sandbox hangs (its calls last until their
deadline) can tie up only its share, never every slot.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairDispatcher:
    def __init__(self, slots: int, per_tenant: int | None = None) -> None:
        self.slots = slots
        self.per_tenant = per_tenant or max(1, slots // 4)
        self.busy = 0
        self.held: Counter[str] = Counter()
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    def waiting(self, tenant: str) -> int:
        return len(self._waiting.get(tenant, ()))

    def _may_take(self, tenant: str) -> bool:
        return self.busy < self.slots and self.held[tenant] < self.per_tenant

    @asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        if self._may_take(tenant) and not self._waiting:
            self._take(tenant)
        else:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(tenant, deque()).append(fut)
            self._hand_out()  # a free slot may be ours if those ahead are at their share
            try:
                await fut  # the releaser counted us in `busy` already
            except asyncio.CancelledError:
                if not self._forget(tenant, fut):
                    self._release(tenant)  # we were handed a slot as we were cancelled
                raise
        try:
            yield
        finally:
            self._release(tenant)

    def _take(self, tenant: str) -> None:
        self.busy += 1
        self.held[tenant] += 1

    def _release(self, tenant: str) -> None:
        self.busy -= 1
        self.held[tenant] -= 1
        if not self.held[tenant]:
            del self.held[tenant]
        self._hand_out()

    def _hand_out(self) -> None:
        """Give free slots to waiting tenants in turn, skipping those at their share."""
        for tenant in list(self._waiting):
            if self.busy >= self.slots:
                return
            queue = self._waiting.get(tenant)
            if queue is None or not self._may_take(tenant):
                continue
            fut = queue.popleft()
            if queue:
                self._waiting.move_to_end(tenant)  # round-robin: this tenant goes last
            else:
                del self._waiting[tenant]
            if not fut.done():
                self._take(tenant)
                fut.set_result(None)

    def _forget(self, tenant: str, fut: asyncio.Future[None]) -> bool:
        queue = self._waiting.get(tenant)
        if queue is None or fut not in queue:
            return False
        queue.remove(fut)
        if not queue:
            del self._waiting[tenant]
        return True
