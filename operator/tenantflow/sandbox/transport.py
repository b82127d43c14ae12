"""How the operator reaches a tenant's runner: HTTP over TCP (cluster) or a unix socket (local)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from tenantflow.errors import TenantflowError
from tenantflow.sandbox import auth


class SandboxUnavailable(TenantflowError):
    """The runner could not be reached or lost its worker; the advance may be retried."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Endpoint:
    """Where a tenant's runner listens, and the key its requests are signed with."""

    key: bytes
    url: str = "http://sandbox"  # base URL (host ignored for unix sockets)
    socket: str | None = None


class HttpTransport:
    """One pooled aiohttp session per endpoint; requests HMAC-signed."""

    def __init__(self, timeout: float = 1800.0) -> None:
        self._sessions: dict[Endpoint, aiohttp.ClientSession] = {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def _session(self, ep: Endpoint) -> aiohttp.ClientSession:
        session = self._sessions.get(ep)
        if session is None or session.closed:
            connector = (
                aiohttp.UnixConnector(path=ep.socket)
                if ep.socket
                else aiohttp.TCPConnector(limit=64)
            )
            session = self._sessions[ep] = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout
            )
        return session

    async def advance(self, ep: Endpoint, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", **auth.sign(ep.key, body)}
        try:
            async with self._session(ep).post(
                f"{ep.url}/v1/advance", data=body, headers=headers
            ) as resp:
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SandboxUnavailable(
                "SandboxUnreachable", f"cannot reach the sandbox runner: {exc!r}"
            ) from None
        if resp.status == 200:
            return data
        err = (data or {}).get("error", {})
        raise SandboxUnavailable(
            err.get("name", f"HTTP{resp.status}"),
            err.get("message", f"runner answered {resp.status}"),
        )

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
