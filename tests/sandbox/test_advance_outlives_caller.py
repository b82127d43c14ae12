"""An operator that dies mid-advance (its pod deleted, evicted, rolled) and the one that
takes over, on a real jailed runner: the first advance's caller goes away while its step
body runs; the second advance of the same run arrives while the body still runs. The
body runs once: the first advance runs to its end (its completed step vouched for), the
second waits for it and recalls the step instead of running it beside it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tenantflow.sandbox import auth
from tenantflow.sandbox.local import LocalSandboxes
from tenantflow.sandbox.payload import advance_payload

pytestmark = pytest.mark.slow
KEY = b"outlive-key"
LONG = """
import time

async def run(event, step, env):
    env.db.execute("CREATE TABLE IF NOT EXISTS bodies (at REAL)")

    def long():
        env.db.execute("INSERT INTO bodies VALUES (?)", (time.time(),))
        time.sleep(4)
        return "slept"

    slept = await step.do("long", long)
    runs = env.db.query("SELECT count(*) AS n FROM bodies")[0]["n"]
    return {"slept": slept, "bodies": runs}
"""


class Runner:
    def __init__(self, root: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.local = LocalSandboxes(root / "s")
        ep = self.loop.run_until_complete(self.local.endpoint("outlive", str(root / "d"), KEY))
        assert ep.socket is not None
        self.socket = ep.socket

    async def post(self, value: dict[str, Any], timeout: float) -> tuple[int, Any]:
        body = json.dumps(value).encode()
        headers = {"Content-Type": "application/json", **auth.sign(KEY, body)}
        async with (
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=self.socket)) as session,
            session.post(
                "http://sandbox/v1/advance",
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp,
        ):
            return resp.status, await resp.json(content_type=None)

    def close(self) -> None:
        self.local.stop_all()
        self.loop.close()


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    r = Runner(tmp_path)
    yield r
    r.close()


def test_a_step_body_runs_once_when_its_caller_dies_and_another_takes_over(
    runner: Runner,
) -> None:
    def payload(started_at: str) -> dict[str, Any]:
        return advance_payload(
            source=LONG, instance_id="build-1", instance_uid="uid-1", started_at=started_at
        )

    async def scenario() -> tuple[int, Any]:
        # the first operator: gone 1 s into the 4 s step body (its connection dropped)
        with pytest.raises(TimeoutError):
            await runner.post(payload("2030-01-01T00:00:00Z"), timeout=1.0)
        # its successor sends the advance at once, while the body still runs; the start
        # was never persisted (it goes with the first advance's result), so it starts the
        # instance again: another startedAt, the same object (uid)
        return await runner.post(payload("2030-01-01T00:00:02Z"), timeout=60.0)

    status, answer = runner.loop.run_until_complete(scenario())
    assert status == 200, answer
    assert answer["outcome"]["output"] == {"slept": "slept", "bodies": 1}, answer["outcome"]
    assert answer["executed"] == [["long", "recalled"]], "recalled, not run beside the first"
