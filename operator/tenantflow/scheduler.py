"""One heap of wake-ups for every sleeping or waiting instance (no timer per instance).

Rebuilt from status when the operator starts: the first event for each instance computes
its next wake-up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
from collections.abc import Callable


class WakeupScheduler:
    def __init__(self, wake: Callable[[str], None]) -> None:
        self._wake = wake
        self._heap: list[tuple[dt.datetime, str]] = []
        self._due: dict[str, dt.datetime] = {}
        self._changed = asyncio.Event()

    def schedule(self, key: str, when: dt.datetime) -> None:
        """Wake `key` at `when` (replacing an earlier schedule for it)."""
        if self._due.get(key) == when:
            return  # already due then: no second heap entry (a wake is re-scheduled often)
        self._due[key] = when
        heapq.heappush(self._heap, (when, key))
        self._changed.set()

    def cancel(self, key: str) -> None:
        self._due.pop(key, None)

    def __len__(self) -> int:
        return len(self._due)

    async def run(self) -> None:
        while True:
            now = dt.datetime.now(dt.UTC)
            while self._heap and self._heap[0][0] <= now:
                when, key = heapq.heappop(self._heap)
                if self._due.get(key) == when:  # stale entries are skipped lazily
                    del self._due[key]
                    self._wake(key)
            timeout = (self._heap[0][0] - now).total_seconds() if self._heap else None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
