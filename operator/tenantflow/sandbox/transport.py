"""How the operator reaches a tenant's runner: HTTP over TCP (cluster) or a unix socket (local).

Requests are signed with the tenant's key and so are the runner's answers (bound to the
request they answer): whatever listens at the runner's address, only the key's holder is
believed. A call waits as long as the advance may take (its steps' timeout plus the batch
budget, plus a margin), never a fixed half hour.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from tenantflow.errors import TenantflowError
from tenantflow.sandbox import auth
from tenantflow.sandbox.payload import deadline_seconds

CONNECT_SECONDS = 3.0
MARGIN_SECONDS = 13.0  # past the advance's deadline: the runner's grace, then the network


class SandboxUnavailable(TenantflowError):
    """The runner could not be reached or lost its worker; the advance may be retried.

    `lost_steps` ({step: attempt}) and `cause` ({"name", "message"}) are set when the
    worker's process was killed while running those step attempts (the kernel's memory
    limit, the advance's deadline): the attempts failed, and count against their retries."""

    def __init__(
        self,
        reason: str,
        message: str,
        lost_steps: dict[str, int] | None = None,
        cause: dict[str, str] | None = None,
    ) -> None:
        self.reason = reason
        self.lost_steps = lost_steps or {}
        self.cause = cause
        super().__init__(message)


@dataclass(frozen=True)
class Endpoint:
    """Where a tenant's runner listens, and the key its requests are signed with."""

    key: bytes
    url: str = "http://sandbox"  # base URL (host ignored for unix sockets)
    socket: str | None = None


def call_timeout(payload: dict[str, Any]) -> float:
    return deadline_seconds(payload) + MARGIN_SECONDS


class HttpTransport:
    """One pooled aiohttp session per endpoint; requests and answers HMAC-signed."""

    def __init__(self) -> None:
        self._sessions: dict[Endpoint, aiohttp.ClientSession] = {}

    def _session(self, ep: Endpoint) -> aiohttp.ClientSession:
        session = self._sessions.get(ep)
        if session is None or session.closed:
            connector = (
                aiohttp.UnixConnector(path=ep.socket)
                if ep.socket
                else aiohttp.TCPConnector(limit=64)
            )
            session = self._sessions[ep] = aiohttp.ClientSession(connector=connector)
        return session

    async def advance(self, ep: Endpoint, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        signed = auth.sign(ep.key, body)
        headers = {"Content-Type": "application/json", **signed}
        # a runner that is gone (a deleted pod's address) must fail in seconds, not after
        # the advance's whole budget
        timeout = aiohttp.ClientTimeout(total=call_timeout(payload), sock_connect=CONNECT_SECONDS)
        try:
            async with self._session(ep).post(
                f"{ep.url}/v1/advance", data=body, headers=headers, timeout=timeout
            ) as resp:
                raw = await resp.read()
                status, answer_headers = resp.status, resp.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            if isinstance(exc, aiohttp.ClientConnectorError):  # a moved pod's address
                stale = self._sessions.pop(ep, None)
                if stale is not None:
                    await stale.close()
            raise SandboxUnavailable(
                "SandboxUnreachable", f"cannot reach the sandbox runner: {exc!r}"
            ) from None
        try:
            auth.verify_response(ep.key, signed[auth.SIGNATURE_HEADER], status, raw, answer_headers)
            data = json.loads(raw)
        except (auth.AuthError, ValueError) as exc:
            raise SandboxUnavailable(
                "SandboxUnauthenticated",
                f"the sandbox's answer ({status}) was refused: {exc}; something other than "
                "the tenant's runner answered",
            ) from None
        if status == 200 and isinstance(data, dict):
            return data
        err = (data or {}).get("error", {}) if isinstance(data, dict) else {}
        steps, cause = err.get("steps"), err.get("cause")
        raise SandboxUnavailable(
            str(err.get("name", f"HTTP{status}")),
            str(err.get("message", f"runner answered {status}")),
            lost_steps=steps if isinstance(steps, dict) else None,
            cause=cause if isinstance(cause, dict) else None,
        )

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
