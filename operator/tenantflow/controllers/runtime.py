"""Process-wide operator state shared by the handlers (set up once at kopf startup)."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tenantflow.cache import Cache
from tenantflow.kube.client import Kube
from tenantflow.observability.logging import get_logger
from tenantflow.tenancy.manifests import OperatorSettings

if TYPE_CHECKING:
    from tenantflow.controllers.instance import InstanceDriver

log = get_logger("tenantflow.operator")


def settings_from_env() -> OperatorSettings:
    defaults = OperatorSettings()
    return OperatorSettings(
        namespace=os.environ.get("TENANTFLOW_NAMESPACE", defaults.namespace),
        sandbox_image=os.environ.get("TENANTFLOW_SANDBOX_IMAGE", defaults.sandbox_image),
    )


class KeyedWorkQueue:
    """At most one run per key at a time; requests during a run coalesce into one re-run;
    at most `workers` runs at once, in request order.

    Coalescing is what makes drift repair cheap (a burst of watch events for a tenant's
    objects becomes one reconcile); the worker bound is what keeps a burst of 50,000 new
    instances a queue rather than 50,000 concurrent tasks holding responses in memory.
    A failed run is retried after RETRY_DELAY, without holding a worker.
    """

    RETRY_DELAY = 2.0

    def __init__(self, work: Callable[[str], Awaitable[None]], workers: int = 8) -> None:
        self._work, self.max_workers = work, workers
        self._pending: deque[str] = deque()
        self._queued: set[str] = set()
        self._running: set[str] = set()
        self._dirty: set[str] = set()
        self._workers: set[asyncio.Task[None]] = set()

    def request(self, key: str) -> None:
        if key in self._running:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._pending.append(key)
            if len(self._workers) < self.max_workers:
                task = asyncio.create_task(self._worker())
                self._workers.add(task)
                task.add_done_callback(self._workers.discard)

    def busy(self, key: str) -> bool:
        """A run of `key` is in progress or waiting for a worker."""
        return key in self._running or key in self._queued

    def __len__(self) -> int:
        """Keys waiting for a worker (the queue depth a metric or a benchmark looks at)."""
        return len(self._pending)

    async def _worker(self) -> None:
        while self._pending:
            key = self._pending.popleft()
            self._queued.discard(key)
            self._running.add(key)
            try:
                await self._work(key)
                failed = False
            except Exception:  # one object's failure must not stop the others
                log.exception("reconcile failed", key=key)
                failed = True
            finally:
                self._running.discard(key)
            if failed:
                self._dirty.discard(key)
                asyncio.get_running_loop().call_later(self.RETRY_DELAY, self.request, key)
            elif key in self._dirty:
                self._dirty.discard(key)
                self.request(key)

    async def drain(self) -> None:
        while self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)


@dataclass
class Runtime:
    kube: Kube
    settings: OperatorSettings
    queues: dict[str, KeyedWorkQueue] = field(default_factory=dict)
    instances: InstanceDriver | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # ControllerRevisions by (namespace, definition, number): immutable while their
    # definition exists, so forgotten whenever the definition changes or goes
    revisions: Cache[tuple[str, str, int], dict[str, Any]] = field(
        default_factory=lambda: Cache(maxsize=2048)
    )
    # status.activeRevision by (namespace, definition), forgotten on the same events
    active_revisions: Cache[tuple[str, str], int] = field(
        default_factory=lambda: Cache(maxsize=4096)
    )

    def forget_definition(self, namespace: str, name: str) -> None:
        self.revisions.forget(lambda k: k[:2] == (namespace, name))
        self.active_revisions.discard((namespace, name))


_runtime: Runtime | None = None


def get() -> Runtime:
    if _runtime is None:
        raise RuntimeError("the operator runtime is not started")
    return _runtime


def set_runtime(rt: Runtime | None) -> None:
    global _runtime
    _runtime = rt
