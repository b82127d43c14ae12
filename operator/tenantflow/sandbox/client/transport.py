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
from tenantflow.observability import metrics
from tenantflow.observability.logging import get_logger
from tenantflow.sandbox.protocol import auth, vouch
from tenantflow.sandbox.protocol.frames import LOST_CAUSES, MAX_RUNNING
from tenantflow.sandbox.protocol.payload import deadline_seconds

CONNECT_SECONDS = 3.0
MARGIN_SECONDS = 13.0  # past the advance's deadline: the runner's grace, then the network
HISTORY_SECONDS = 30.0  # a history request (one SQLite statement or page, in the runner)


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
        # a runner that is gone (a deleted pod's address) must fail in seconds, not after
        # the advance's whole budget
        return await self._post(ep, "/v1/advance", payload, call_timeout(payload))

    async def history(self, ep: Endpoint, request: dict[str, Any]) -> dict[str, Any]:
        """A request to the tenant's history store (archive, search, get, logs, prune)."""
        return await self._post(ep, "/v1/history", request, HISTORY_SECONDS)

    async def _post(
        self, ep: Endpoint, path: str, value: dict[str, Any], seconds: float
    ) -> dict[str, Any]:
        body = json.dumps(value, separators=(",", ":")).encode()
        signed = auth.sign(ep.key, body)
        headers = {"Content-Type": "application/json", **signed}
        timeout = aiohttp.ClientTimeout(total=seconds, sock_connect=CONNECT_SECONDS)
        try:
            async with self._session(ep).post(
                f"{ep.url}{path}", data=body, headers=headers, timeout=timeout
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
        raise refusal(status, data)

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


MAX_REASON = 64  # characters of a refusal's name (a condition reason, an Event reason)
MAX_MESSAGE = 1024  # characters of a refusal's message (a condition, an Event)
MAX_STEP_NAME = 253  # the runner keeps no longer ones
MAX_ATTEMPT = 1_000_000


def refusal(status: int, data: Any) -> SandboxUnavailable:
    """A runner's non-200 answer as an error, its parts checked and bounded: signed by the
    runner, but its account of a lost worker (steps, cause) comes from the sandbox, where
    tenant code can forge it. A part that is not well-formed is dropped: what remains is
    a plain worker loss."""
    err = data.get("error") if isinstance(data, dict) else None
    err = err if isinstance(err, dict) else {}
    name, message = err.get("name"), err.get("message")
    reason = name if isinstance(name, str) and _is_reason(name) else f"HTTP{status}"
    text = message[:MAX_MESSAGE] if isinstance(message, str) else f"runner answered {status}"
    steps, cause = _lost_steps(err.get("steps")), _cause(err.get("cause"))
    if not (steps and cause):
        steps, cause = None, None
    return SandboxUnavailable(reason, text, lost_steps=steps, cause=cause)


def _is_reason(name: str) -> bool:
    return 0 < len(name) <= MAX_REASON and name.isascii() and name.isalnum() and name[0].isalpha()


def _lost_steps(steps: Any) -> dict[str, int] | None:
    """{step: attempt}, at most MAX_RUNNING of them, or None if anything is off."""
    if not isinstance(steps, dict) or not 0 < len(steps) <= MAX_RUNNING:
        return None
    for step, attempt in steps.items():
        if not (0 < len(step) <= MAX_STEP_NAME and type(attempt) is int):
            return None
        if not 0 < attempt < MAX_ATTEMPT:
            return None
    return dict(steps)


def _cause(cause: Any) -> dict[str, str] | None:
    """{"name", "message"}: a name the zygote uses, a bounded message; or None."""
    if not isinstance(cause, dict):
        return None
    name, message = cause.get("name"), cause.get("message")
    if name not in LOST_CAUSES or not isinstance(message, str):
        return None
    return {"name": name, "message": message[:MAX_MESSAGE]}


REJECTED_REASON = "StoredRecordRejected"
_RECORD_NAMES = {"stepResult": "stored result", "output": "offloaded output"}
log = get_logger("tenantflow.instance")


def rejected_records(
    tenant: str, instance: str, result: dict[str, Any]
) -> tuple[str, str, str] | None:
    """The Warning Event for an advance's rejected records, or None (counted and logged).

    A record tenant code can write (a step result in the tenant's store, an offloaded
    output) that failed its check was ignored as absent: the step ran again (a child step
    whose child's output was rewritten errors `OutputRejected`). The report comes from
    the sandbox, checked and bounded again here: it is the runner's, signed, but its
    entries are the child's."""
    rejected = vouch.checked_rejections(result.get(vouch.REJECTED), lambda text, n: text[:n])
    if not rejected:
        return None
    for entry in rejected:
        metrics.REJECTED_RECORDS.labels(tenant=tenant, record=entry["record"]).inc()
    log.warning("stored records rejected", tenant=tenant, instance=instance, records=rejected)
    said = "; ".join(
        f"the {_RECORD_NAMES[e['record']]} of step {e['step']!r}: {e['problem']}" for e in rejected
    )
    message = f"ignored as absent (forged or rewritten in the tenant's store): {said}"
    return ("Warning", REJECTED_REASON, message[:MAX_MESSAGE])
