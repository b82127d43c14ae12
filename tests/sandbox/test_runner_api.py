"""Fuzzing the runner's HTTP API: every request gets a JSON answer with a clear status, bad
or stale MACs never run anything, and the runner keeps serving."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenantflow.sandbox.jail.local import LocalSandboxes
from tenantflow.sandbox.protocol import auth
from tenantflow.sandbox.protocol.payload import advance_payload

pytestmark = pytest.mark.slow
KEY = b"fuzz-key"
VALID = advance_payload(
    source="async def run(event, step):\n    return 1\n",
    instance_id="i",
    started_at="2030-01-01T00:00:00Z",
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


class Runner:
    def __init__(self, root: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.local = LocalSandboxes(root / "s")
        ep = self.loop.run_until_complete(self.local.endpoint("fuzz", str(root / "d"), KEY))
        assert ep.socket is not None
        self.socket = ep.socket

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        async def call() -> tuple[int, Any]:
            async with (
                aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=self.socket)) as session,
                session.post("http://sandbox/v1/advance", data=body, headers=headers) as resp,
            ):
                return resp.status, await resp.json(content_type=None)

        return self.loop.run_until_complete(call())

    def close(self) -> None:
        self.local.stop_all()
        self.loop.close()


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    r = Runner(tmp_path_factory.mktemp("fuzz"))
    yield r
    r.close()


def signed(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", **auth.sign(KEY, body)}


def test_a_valid_request_runs(runner: Runner) -> None:
    body = json.dumps(VALID).encode()
    status, data = runner.post(body, signed(body))
    assert status == 200 and data["outcome"] == {"kind": "Complete", "output": 1, "outputRef": None}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing signature"),
        ({auth.TIMESTAMP_HEADER: "1", auth.SIGNATURE_HEADER: "00"}, "stale"),
        ({auth.TIMESTAMP_HEADER: "soon", auth.SIGNATURE_HEADER: "00"}, "malformed"),
    ],
)
def test_unsigned_or_stale_requests_are_refused(
    runner: Runner, headers: dict[str, str], reason: str
) -> None:
    status, data = runner.post(json.dumps(VALID).encode(), headers)
    assert status == 401 and reason in data["error"]["message"]


def test_a_mac_for_another_body_is_refused(runner: Runner) -> None:
    body = json.dumps(VALID).encode()
    status, data = runner.post(body.replace(b"return 1", b"return 2"), signed(body))
    assert (status, data["error"]["message"]) == (401, "bad signature")


def test_a_replayed_old_signature_is_refused(runner: Runner) -> None:
    body = json.dumps(VALID).encode()
    old = auth.sign(KEY, body, timestamp=int(time.time()) - 3600)
    status, _ = runner.post(body, {"Content-Type": "application/json", **old})
    assert status == 401


mutations = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.sampled_from(list(VALID)).flatmap(
        lambda key: json_values.map(lambda v, key=key: json.dumps({**VALID, key: v}).encode())
    ),
    st.sampled_from(list(VALID)).map(
        lambda key: json.dumps({k: v for k, v in VALID.items() if k != key}).encode()
    ),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(body=mutations)
def test_malformed_signed_requests_get_clear_json_errors(runner: Runner, body: bytes) -> None:
    status, data = runner.post(body, signed(body))
    assert status in (200, 400, 500), status
    if status != 200:
        assert data["error"]["name"] in ("BadRequest", "SandboxError") and data["error"]["message"]
    ok = json.dumps(VALID).encode()
    assert runner.post(ok, signed(ok))[0] == 200, "the runner keeps serving"


def test_an_answer_not_signed_with_the_key_is_refused(tmp_path: Path) -> None:
    """A process that took over the runner's address cannot answer in its place (class 1b)."""
    from aiohttp import web

    from tenantflow.sandbox.client.transport import Endpoint, HttpTransport, SandboxUnavailable

    forged = {"journal": [], "outcome": {"kind": "Complete", "output": "forged"}, "logs": []}

    async def fake(_: web.Request) -> web.Response:
        return web.json_response(forged)

    async def scenario() -> str:
        app = web.Application()
        app.router.add_post("/v1/advance", fake)
        runner = web.AppRunner(app)
        await runner.setup()
        sock = str(tmp_path / "fake.sock")
        await web.UnixSite(runner, sock).start()
        transport = HttpTransport()
        try:
            await transport.advance(Endpoint(key=KEY, socket=sock), VALID)
        except SandboxUnavailable as exc:
            return exc.reason
        finally:
            await transport.close()
            await runner.cleanup()
        return "accepted"

    assert asyncio.run(scenario()) == "SandboxUnauthenticated"


def test_a_signed_answer_is_bound_to_its_request() -> None:
    body = b'{"ok":true}'
    headers = auth.sign_response(KEY, "mac-1", 200, body)
    auth.verify_response(KEY, "mac-1", 200, body, headers)
    for mac, status, other in (("mac-2", 200, body), ("mac-1", 503, body), ("mac-1", 200, b"{}")):
        with pytest.raises(auth.AuthError):
            auth.verify_response(KEY, mac, status, other, headers)
