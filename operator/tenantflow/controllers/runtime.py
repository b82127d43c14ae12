"""Process-wide operator state shared by the handlers (set up once at kopf startup)."""

from __future__ import annotations

import asyncio
import os
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
    """At most one run per key at a time; requests during a run coalesce into one re-run.

    This is what makes drift repair cheap: a burst of watch events for a tenant's objects
    becomes one reconcile, not one per event.
    """

    def __init__(self, work: Callable[[str], Awaitable[None]]) -> None:
        self._work = work
        self._dirty: set[str] = set()
        self._running: dict[str, asyncio.Task[None]] = {}

    def request(self, key: str) -> None:
        self._dirty.add(key)
        if key not in self._running:
            self._running[key] = asyncio.create_task(self._loop(key))

    async def _loop(self, key: str) -> None:
        try:
            while key in self._dirty:
                self._dirty.discard(key)
                try:
                    await self._work(key)
                except Exception:  # one tenant's failure must not stop the others
                    log.exception("reconcile failed", key=key)
                    await asyncio.sleep(2)
                    self._dirty.add(key)
        finally:
            self._running.pop(key, None)

    async def drain(self) -> None:
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)


@dataclass
class Runtime:
    kube: Kube
    settings: OperatorSettings
    queues: dict[str, KeyedWorkQueue] = field(default_factory=dict)
    instances: InstanceDriver | None = None
    # ControllerRevisions by (namespace, definition, number): immutable while their
    # definition exists, so forgotten whenever the definition changes or goes
    revisions: Cache[tuple[str, str, int], dict[str, Any]] = field(
        default_factory=lambda: Cache(maxsize=2048)
    )
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


_runtime: Runtime | None = None


def get() -> Runtime:
    if _runtime is None:
        raise RuntimeError("the operator runtime is not started")
    return _runtime


def set_runtime(rt: Runtime | None) -> None:
    global _runtime
    _runtime = rt
