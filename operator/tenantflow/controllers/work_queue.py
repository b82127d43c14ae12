"""The one work queue every controller uses: keyed, coalescing, bounded, with run-later.

As client-go's workqueue (and Argo's `wfQueue.AddAfter`, controller-runtime's
`RequeueAfter`): at most one run per key at a time; requests during a run coalesce into one
re-run; at most `workers` runs at once, in request order; `request_after` puts a key back
at a time (a sleeping instance's wake-up, a retry's backoff, a usage refresh), all in one
heap rather than one timer per key.

Two rules are the runtime's, so no controller can forget them:
- **The ownership gate** (controllers/ownership.py) is asked before every run: a key whose
  namespace this replica may not act on now is deferred (its shard's lease is late) or
  dropped (another replica's shard); `drop` forgets a lost shard's keys at once.
- **Per-key failure backoff**, as client-go's ItemExponentialFailureRateLimiter: a run
  that raises is retried after BACKOFF_BASE, doubling per consecutive failure of that key
  up to BACKOFF_MAX, and forgotten by its first success; one failing object neither
  spins every 2 s for ever nor slows the others.

Coalescing is what makes drift repair cheap (a burst of watch events for a tenant's objects
becomes one reconcile); the worker bound is what keeps a burst of 50,000 new instances a
queue rather than 50,000 concurrent tasks holding responses in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

from tenantflow.controllers.ownership import Gate, Verdict, sole_replica
from tenantflow.observability import metrics
from tenantflow.observability.logging import get_logger
from tenantflow.vocabulary import ObjectKey, split_key

log = get_logger("tenantflow.work_queue")


# a queue's key: a Tenant's name (its queue), or a namespaced object's ObjectKey
K = TypeVar("K", bound=str)


def namespace_in_key(key: ObjectKey) -> str:
    """The namespace of an ObjectKey (every namespaced kind's queue)."""
    return split_key(key)[0]


class WorkQueue(Generic[K]):
    BACKOFF_BASE = 1.0  # seconds before a failed run is retried the first time
    BACKOFF_MAX = 60.0  # ...and at most, however often it failed (recovery stays prompt)
    DEFER_DELAY = 1.0  # seconds before a key deferred by the gate is asked again

    def __init__(
        self,
        work: Callable[[K], Awaitable[None]],
        *,
        namespace_of: Callable[[K], str],  # the namespace whose shard gates a key's runs
        workers: int = 8,
        name: str = "",
        gate: Gate = sole_replica,
    ) -> None:
        self._work, self.max_workers, self.name = work, workers, name
        self.gate, self.namespace_of = gate, namespace_of
        self._failures: dict[K, int] = {}  # consecutive failed runs, by key
        self._pending: deque[K] = deque()
        self._queued: set[K] = set()
        self._running: set[K] = set()
        self._dirty: set[K] = set()
        self._workers: set[asyncio.Task[None]] = set()
        self._heap: list[tuple[dt.datetime, K]] = []
        self._due: dict[K, dt.datetime] = {}
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ requests
    def request(self, key: K) -> None:
        """Run `key` as soon as a worker is free (once, however often it is asked)."""
        if key in self._running:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._pending.append(key)
            if len(self._workers) < self.max_workers:
                task = asyncio.create_task(self._worker())
                self._workers.add(task)
                task.add_done_callback(self._workers.discard)

    def request_all(self, keys: Iterable[K]) -> None:
        for key in keys:
            self.request(key)

    def request_after(self, key: K, when: dt.datetime | float) -> None:
        """Run `key` at `when` (a time, or seconds from now), replacing an earlier
        run-later of it; an immediate `request` in between does not cancel it."""
        if not isinstance(when, dt.datetime):
            when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=when)
        if self._due.get(key) == when:
            return  # already due then: no second heap entry (a wake is re-scheduled often)
        self._due[key] = when
        heapq.heappush(self._heap, (when, key))
        self._changed.set()

    def request_within(self, key: K, seconds: float) -> None:
        """Run `key` within `seconds`: a run-later due sooner stands (a refresh at most
        that often, however many changes ask for it)."""
        when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
        if key not in self._due or self._due[key] > when:
            self.request_after(key, when)

    def due_at(self, key: K) -> dt.datetime | None:
        """When `key`'s run-later is due (None: it has none)."""
        return self._due.get(key)

    def cancel_later(self, key: K) -> None:
        """Forget `key`'s run-later (its object is gone)."""
        self._due.pop(key, None)

    def drop(self, gone: Callable[[str], bool]) -> int:
        """Forget every key whose namespace `gone` names (a shard this replica lost): its
        waiting runs, run-laters, re-runs and failure counts. A run in progress finishes,
        fenced at its status write. Returns how many keys were dropped."""
        doomed = {
            k for k in (*self._queued, *self._due, *self._dirty) if gone(self.namespace_of(k))
        }
        if doomed:
            self._pending = deque(k for k in self._pending if k not in doomed)
            self._queued -= doomed
            self._dirty -= doomed
            for key in doomed:
                self._due.pop(key, None)  # its heap entries are skipped lazily
                self._failures.pop(key, None)
            metrics.QUEUE_DROPPED.labels(queue=self.name).inc(len(doomed))
        return len(doomed)

    def busy(self, key: K) -> bool:
        """A run of `key` is in progress or waiting for a worker."""
        return key in self._running or key in self._queued

    def __len__(self) -> int:
        """Keys waiting for a worker (the queue depth a metric or a benchmark looks at)."""
        return len(self._pending)

    def scheduled(self) -> int:
        """Keys with a run-later pending."""
        return len(self._due)

    # ------------------------------------------------------------------ running
    async def run_later_loop(self) -> None:
        """Hand due run-laters to `request`; runs until cancelled (one task per queue)."""
        while True:
            now = dt.datetime.now(dt.UTC)
            while self._heap and self._heap[0][0] <= now:
                when, key = heapq.heappop(self._heap)
                if self._due.get(key) == when:  # stale entries are skipped lazily
                    del self._due[key]
                    self.request(key)
            timeout = (self._heap[0][0] - now).total_seconds() if self._heap else None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    async def _worker(self) -> None:
        while self._pending:
            key = self._pending.popleft()
            self._queued.discard(key)
            verdict = self.gate(self.namespace_of(key))
            if verdict is not Verdict.ACT:
                self._gated(key, verdict)
                continue
            self._running.add(key)
            try:
                await self._work(key)
                failed = False
            except Exception:  # one object's failure must not stop the others
                failed = True
                delay = self._failed(key)
                log.exception("reconcile failed", queue=self.name, key=key, retry_in=delay)
            finally:
                self._running.discard(key)
            if failed:
                self._dirty.discard(key)
                self.request_after(key, delay)
            else:
                self._failures.pop(key, None)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.request(key)

    def _gated(self, key: K, verdict: Verdict) -> None:
        """A run the ownership gate refused: shortly again, or never (another's now)."""
        metrics.QUEUE_GATED.labels(queue=self.name, verdict=verdict.value).inc()
        if verdict is Verdict.DEFER:
            self.request_after(key, self.DEFER_DELAY)
        else:
            self._due.pop(key, None)
            self._failures.pop(key, None)

    def _failed(self, key: K) -> float:
        """The backoff of `key`'s next retry: doubled by each consecutive failure."""
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        metrics.QUEUE_RETRIES.labels(queue=self.name).inc()
        return float(min(self.BACKOFF_BASE * 2 ** (failures - 1), self.BACKOFF_MAX))

    def failures(self, key: K) -> int:
        """Consecutive failed runs of `key` (0: its last run succeeded, or it never ran)."""
        return self._failures.get(key, 0)

    async def drain(self) -> None:
        """Wait for the runs in progress and those waiting for a worker."""
        while self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)
