"""Fair dispatch to sandboxes: a fixed number of slots handed out round-robin by tenant.

A tenant with thousands of waiting advances gets one slot per turn like everyone else,
so another tenant's single advance waits at most one turn.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairDispatcher:
    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.busy = 0
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    def waiting(self, tenant: str) -> int:
        return len(self._waiting.get(tenant, ()))

    @asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        if self.busy < self.slots and not self._waiting:
            self.busy += 1
        else:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(tenant, deque()).append(fut)
            try:
                await fut  # the releaser counted us in `busy` already
            except asyncio.CancelledError:
                if not self._forget(tenant, fut):
                    self._release()  # we were handed a slot as we were cancelled
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        self.busy -= 1
        while self._waiting:
            tenant, queue = next(iter(self._waiting.items()))
            fut = queue.popleft()
            if queue:
                self._waiting.move_to_end(tenant)  # round-robin: this tenant goes last
            else:
                del self._waiting[tenant]
            if not fut.done():
                self.busy += 1
                fut.set_result(None)
                return

    def _forget(self, tenant: str, fut: asyncio.Future[None]) -> bool:
        queue = self._waiting.get(tenant)
        if queue is None or fut not in queue:
            return False
        queue.remove(fut)
        if not queue:
            del self._waiting[tenant]
        return True
