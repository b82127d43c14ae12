"""A small LRU map with an optional time-to-live.

For what the hot path would otherwise re-read on every drive of an instance: immutable
revisions (until their definition changes), tenant limits and sandbox endpoints (briefly).
Each read it saves is an API round trip the API server and etcd do not have to serve.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Cache(Generic[K, V]):
    def __init__(
        self,
        maxsize: int,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_evict: Callable[[V], None] | None = None,
    ) -> None:
        """`on_evict(value)`: a value dropped for its age or for room (to close it)."""
        self.maxsize, self.ttl, self.clock = maxsize, ttl, clock
        self.on_evict = on_evict
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        if found is None:
            return None
        stored_at, value = found
        if self.ttl is not None and self.clock() - stored_at > self.ttl:
            del self._items[key]
            self._evicted(value)
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = (self.clock(), value)
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            self._evicted(self._items.popitem(last=False)[1][1])

    def _evicted(self, value: V) -> None:
        if self.on_evict is not None:
            self.on_evict(value)

    def discard(self, key: K) -> None:
        self._items.pop(key, None)

    def pop(self, key: K) -> V | None:
        """The value (if not expired), taken out."""
        value = self.get(key)
        self.discard(key)
        return value

    def forget(self, matches: Callable[[K], bool]) -> None:
        """Drop every entry whose key matches (e.g. all revisions of one definition)."""
        for key in [k for k in self._items if matches(k)]:
            del self._items[key]

    def __len__(self) -> int:
        return len(self._items)
