"""A loss the sandbox reports (the kernel's memory limit, the advance's deadline, with the
step attempts it killed) is charged like any worker loss: backoff, the strike limit and
bounded records, whatever tenant code forged into the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tenantflow.lifecycle.instance_state import MAX_LOST_BYTES, MAX_LOST_RECORDS
from tenantflow.sandbox.client.transport import SandboxUnavailable, refusal
from tenantflow.vocabulary import Phase
from tests.unit.controllers.harness import Harness

SLOW = """
async def run(event, step):
    return await step.do('hog', lambda: 1, retries={'limit': 1000})
"""


def forged_oom(n: int = 64) -> SandboxUnavailable:
    """What a runner answers to a child that forged progress frames and an OOM account."""
    steps = {"hog": 1, **{f"junk-{i}-" + "x" * 240: 999_999 for i in range(n - 1)}}
    cause = {"name": "OutOfMemory", "message": "m" * 100_000}
    return refusal(
        503,
        {
            "error": {
                "name": "SandboxWorkerLost",
                "message": "m" * 100_000,
                "steps": steps,
                "cause": cause,
            }
        },
    )


async def test_a_reported_loss_backs_off_and_counts_a_strike(tmp_path: Path) -> None:
    h = Harness.new(tmp_path)
    await h.define("slow", SLOW)
    key = h.start("one", "slow")
    for strike in (1, 2):
        h.sandbox.failures = [forged_oom()]
        await h.drive(key)
        st = h.status("one")
        assert st["phase"] == Phase.RUNNING, strike
        assert not h.controller.queue.busy(key), "not driven again at once"
        assert h.controller.queue.scheduled() == 1, "driven again after a backoff"
        lost = st["lostAttempts"]
        assert len(lost) <= MAX_LOST_RECORDS and "hog" in lost
        assert len(json.dumps(lost)) <= MAX_LOST_BYTES
    h.sandbox.failures = [forged_oom()]
    await h.drive(key)
    st = h.status("one")
    assert st["phase"] == Phase.ERRORED and st["error"]["name"] == "SandboxWorkerLost"
    assert "3 times in a row" in st["error"]["message"]
    assert len(json.dumps(st)) < 64_000, "the object stays small"
    assert h.sandbox.calls == 3


async def test_a_real_loss_then_a_good_advance_charges_the_step_and_clears_the_record(
    tmp_path: Path,
) -> None:
    h = Harness.new(tmp_path)
    await h.define("slow", SLOW)
    key = h.start("one", "slow")
    h.sandbox.failures = [forged_oom(1)]
    await h.drive(key)
    await h.drive(key)
    st = h.status("one")
    assert st["phase"] == Phase.COMPLETE and st["output"] == 1
    hog = next(e for e in st["steps"] if e["name"] == "hog")
    assert hog["attempts"] == 2, "the lost attempt counted against the step's retries"
    assert not st.get("lostAttempts")


def test_a_refusal_keeps_only_well_formed_bounded_parts() -> None:
    exc = forged_oom()
    assert exc.reason == "SandboxWorkerLost" and len(str(exc)) <= 1024
    assert exc.cause is not None and len(exc.cause["message"]) <= 1024
    bad: list[dict[str, Any]] = [
        {"steps": {"a": 1}, "cause": {"name": "Whatever", "message": "x"}},  # unknown cause
        {"steps": {"a": True}, "cause": {"name": "OutOfMemory", "message": "x"}},
        {"steps": {f"s{i}": 1 for i in range(65)}, "cause": {"name": "OutOfMemory", "message": ""}},
        {"steps": {"x" * 254: 1}, "cause": {"name": "OutOfMemory", "message": ""}},
        {"steps": {"a": 1}},
    ]
    for err in bad:
        exc = refusal(503, {"error": {"name": "SandboxWorkerLost", "message": "m", **err}})
        assert exc.lost_steps == {} and exc.cause is None, err
    assert refusal(503, {"error": {"name": "<script>", "message": 7}}).reason == "HTTP503"
    assert refusal(502, "not json").reason == "HTTP502"
