"""One advance of a run at a time in a runner, and an advance that outlives its caller.

An operator that takes over a tenant (its predecessor's pod deleted or evicted mid-advance,
a rollout) sends an instance's advance again while the first one still runs a step body in
its worker. Were the first cut off with its caller, its completed step would never be
vouched for (`sandbox.protocol.vouch`) and the second advance, started beside it, would run the body
a second time. So an advance, once handed to a worker, runs to its end (bounded by its
deadline) whether or not its caller still waits, and the next advance of the same run
waits for it: the steps the first completed are then recalled, not run again."""

from __future__ import annotations

import asyncio

from prometheus_client import Counter

from tenantflow.errors import TenantflowError

RUN_WAITS = Counter(
    "tenantflow_runner_run_waits_total",
    "Advances that found another advance of their run in flight, by what became of them.",
    ["result"],
)


class RunBusy(TenantflowError):
    """Another advance of the run did not end within the wait (it is past its deadline)."""


class RunGates:
    """A lock per run, held from the moment an advance is admitted until its worker's
    answer is in (not until its HTTP caller is answered: a caller may be gone)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    async def acquire(self, run: str, wait: float) -> None:
        """Hold `run`, waiting at most `wait` seconds for an advance of it in flight."""
        lock = self._locks.setdefault(run, asyncio.Lock())
        self._users[run] = self._users.get(run, 0) + 1
        busy = lock.locked()
        try:
            async with asyncio.timeout(wait):
                await lock.acquire()
        except TimeoutError:
            self._leave(run)
            RUN_WAITS.labels("busy").inc()
            raise RunBusy(
                f"another advance of this run is still in flight after {wait:.0f}s"
            ) from None
        except BaseException:
            self._leave(run)
            raise
        if busy:
            RUN_WAITS.labels("waited").inc()

    def release(self, run: str) -> None:
        self._locks[run].release()
        self._leave(run)

    def _leave(self, run: str) -> None:
        self._users[run] -= 1
        if not self._users[run]:
            del self._users[run], self._locks[run]
