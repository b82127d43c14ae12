"""HMAC request signing between operator and sandbox runner (key from the tenant's Secret)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from tenantflow.errors import TenantflowError

MAX_SKEW_SECONDS = 60
TIMESTAMP_HEADER = "X-Tenantflow-Timestamp"
SIGNATURE_HEADER = "X-Tenantflow-Signature"


class AuthError(TenantflowError):
    """A request's MAC is missing, wrong or stale."""


def sign(key: bytes, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers for a request carrying `body`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(key, ts.encode() + b"\n" + body, hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: mac}


def verify(
    key: bytes, body: bytes, headers: Mapping[str, str], *, now: float | None = None
) -> None:
    """Raise AuthError unless the headers sign `body` with `key` within the allowed skew."""
    ts, mac = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    if not ts or not mac:
        raise AuthError("missing signature headers")
    try:
        age = abs((time.time() if now is None else now) - int(ts))
    except ValueError:
        raise AuthError("malformed timestamp") from None
    if age > MAX_SKEW_SECONDS:
        raise AuthError(f"stale request ({int(age)}s old)")
    expected = hmac.new(key, ts.encode() + b"\n" + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, mac):
        raise AuthError("bad signature")


RESPONSE_SIGNATURE_HEADER = "X-Tenantflow-Response-Signature"


def sign_response(key: bytes, request_mac: str, status: int, body: bytes) -> dict[str, str]:
    """The runner's answer is bound to the request it answers: a process that took over
    the runner's address cannot answer in its place without the key."""
    msg = f"response\n{request_mac}\n{status}\n".encode() + body
    return {RESPONSE_SIGNATURE_HEADER: hmac.new(key, msg, hashlib.sha256).hexdigest()}


def verify_response(
    key: bytes, request_mac: str, status: int, body: bytes, headers: Mapping[str, str]
) -> None:
    """Raise AuthError unless the response was signed by the holder of `key`."""
    expected = sign_response(key, request_mac, status, body)[RESPONSE_SIGNATURE_HEADER]
    if not hmac.compare_digest(expected, headers.get(RESPONSE_SIGNATURE_HEADER, "")):
        raise AuthError("the answer is not signed with the tenant's key")
