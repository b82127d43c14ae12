"""An operator that dies mid-advance (its pod deleted, evicted, rolled) and the one that
takes over, on a real jailed runner: the first advance's caller goes away while its step
body runs; the second advance of the same run arrives while the body still runs. The
body runs once: the first advance runs to its end (its completed step vouched for), the
second waits for it and recalls the step instead of running it beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tenantflow.sandbox.protocol.payload import advance_payload
from tests.sandbox.test_history_runner import Runner

pytestmark = pytest.mark.slow
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
            await runner.call("/v1/advance", payload("2030-01-01T00:00:00Z"), timeout=1.0)
        # its successor sends the advance at once, while the body still runs; the start
        # was never persisted (it goes with the first advance's result), so it starts the
        # instance again: another startedAt, the same object (uid)
        return await runner.call("/v1/advance", payload("2030-01-01T00:00:02Z"), timeout=60.0)

    status, answer = runner.loop.run_until_complete(scenario())
    assert status == 200, answer
    assert answer["outcome"]["output"] == {"slept": "slept", "bodies": 1}, answer["outcome"]
    assert answer["executed"] == [["long", "recalled"]], "recalled, not run beside the first"
