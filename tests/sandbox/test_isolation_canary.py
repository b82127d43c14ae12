"""The runner fails closed while its pod's network is open: no advance reaches the worker
and the pod is not ready as long as the canary address answers, and both come back once
it stops answering (as when the NetworkPolicy enforcer programs the pod)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import aiohttp
import pytest

from tenantflow.sandbox.pod.isolation import IsolationCanary, canary_address
from tenantflow.sandbox.pod.link import ZygoteLink
from tenantflow.sandbox.pod.runner import Runner
from tenantflow.sandbox.protocol import auth
from tenantflow.sandbox.protocol.payload import NOT_ISOLATED, advance_payload

KEY = b"canary-key"
BODY = json.dumps(
    advance_payload(
        source="async def run(event, step):\n    return 1\n",
        instance_id="i",
        started_at="2030-01-01T00:00:00Z",
    )
).encode()


def test_the_canary_address_comes_from_the_pod_or_the_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert canary_address("kubernetes") == ("10.96.0.1", 443)
    assert canary_address("[fd00::1]:6443") == ("fd00::1", 6443)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(ValueError, match="KUBERNETES_SERVICE_HOST"):
        canary_address("kubernetes")
    with pytest.raises(ValueError, match="HOST:PORT"):
        canary_address("no-port")


async def _call(session: aiohttp.ClientSession, base: str) -> tuple[int, dict, int, dict]:
    async with session.get(f"{base}/healthz") as ready:
        health = (ready.status, await ready.json())
    headers = {"Content-Type": "application/json", **auth.sign(KEY, BODY)}
    async with session.post(f"{base}/v1/advance", data=BODY, headers=headers) as resp:
        return (*health, resp.status, await resp.json())


def test_no_advance_reaches_the_worker_while_the_canary_answers(tmp_path: Path) -> None:
    async def scenario() -> None:
        open_door = socket.create_server(("127.0.0.1", 0))  # the unenforced policy
        port = open_door.getsockname()[1]
        canary = IsolationCanary("127.0.0.1", port, every=0.05)
        # no zygote behind this name (its container still starting): an advance that passes
        # the gate is refused as not ready, not lost (nothing was sent; no strike)
        nobody = ZygoteLink(f"@tenantflow-test-{tmp_path.name}-none")
        runner = Runner(key=KEY, tenant="t", link=nobody, canary=canary)
        app_runner = aiohttp.web.AppRunner(runner.app())
        await app_runner.setup()
        site = aiohttp.web.UnixSite(app_runner, str(tmp_path / "runner.sock"))
        await site.start()
        connector = aiohttp.UnixConnector(path=str(tmp_path / "runner.sock"))
        try:
            async with aiohttp.ClientSession(connector=connector) as session:
                before = await _call(session, "http://runner")  # before any check: closed
                await asyncio.sleep(0.3)
                assert not canary.isolated
                during = await _call(session, "http://runner")
                open_door.close()  # the enforcer programs the pod: connections are refused
                await asyncio.sleep(0.3)
                assert canary.isolated
                after = await _call(session, "http://runner")
        finally:
            open_door.close()
            await app_runner.cleanup()
        for status, health, code, answer in (before, during):
            assert status == 503 and health["ok"] is False, health
            assert code == 503 and answer["error"]["name"] == NOT_ISOLATED, answer
        assert f"127.0.0.1:{port}" in during[3]["error"]["message"]
        status, health, code, answer = after
        assert status == 200 and health["ok"] is True, health
        assert code == 503 and answer["error"]["name"] == "SandboxNotReady", answer
        assert "accepts no advance yet" in answer["error"]["message"], answer

    asyncio.run(scenario())
