"""How the runner reaches its zygote (the worker host): one connection per request."""

from __future__ import annotations

import asyncio

from tenantflow.observability.logging import get_logger
from tenantflow.sandbox.protocol import frames

log = get_logger("tenantflow.runner")

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class WorkerLost(Exception):
    """The worker child died or overran; the message says which. `running`: the step
    attempts it had started ({step: attempt}); `cause`: the zygote's account of the death
    ({"name", "message"}), absent when the zygote itself is gone."""

    def __init__(
        self,
        message: str,
        running: dict[str, int] | None = None,
        cause: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.running = running or {}
        self.cause = cause


class WorkerStarting(Exception):
    """The zygote accepts no connection (its container is starting or restarting):
    nothing was sent, so no advance was lost. A pod woken from zero answers its readiness
    check (the runner's) before the worker container listens; an advance sent then is
    refused as not ready, retried shortly, with no strike against the instance."""


class ZygoteLink:
    """How the runner reaches the zygote: an abstract unix socket (pod: `@name`, in the
    network namespace the pod's containers share; the zygote serves only the runner's uid)."""

    def __init__(self, path: str) -> None:
        self.path = path

    async def connect(self) -> Streams:
        address = frames.abstract_address(self.path)
        return await asyncio.open_unix_connection(address, limit=frames.MAX_RESULT)

    async def restart(self, reason: str) -> bool:
        """Replace a zygote that stopped answering; False where only the kubelet can."""
        log.warning("worker container unhealthy", reason=reason)
        return False

    def close(self) -> None:
        pass
