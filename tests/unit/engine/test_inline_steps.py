"""Sync step bodies on the advance's own thread when they run alone (engine/inline.py),
in the pool when steps run together: the same results, timeouts and concurrency. Run as
the sandbox's worker runs an advance (`worker.run` on the main thread)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tenantflow.sandbox.pod import worker
from tenantflow.sandbox.protocol.payload import advance_payload

# pytest-timeout's default method claims SIGALRM, which sends every step to the pool
pytestmark = [pytest.mark.unit, pytest.mark.timeout(120, method="thread")]


def advance(tmp_path: Path, source: str) -> dict[str, Any]:
    payload = advance_payload(source=source, instance_id="i", started_at="2030-01-01T00:00:00Z")
    answer = worker.run(payload, str(tmp_path), "acme")
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL  # given back
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no timer left running
    return answer


def output(answer: dict[str, Any]) -> Any:
    assert answer["outcome"]["kind"] == "Complete", answer["outcome"]
    return answer["outcome"]["output"]


def test_a_lone_sync_step_runs_on_the_advances_thread(tmp_path: Path) -> None:
    source = """
import threading
async def run(event, step):
    return await step.do("where", lambda: threading.current_thread().name)
"""
    assert output(advance(tmp_path, source)) == "MainThread"


def test_sync_steps_gathered_still_run_together_in_threads(tmp_path: Path) -> None:
    # each waits for the other: run one after the other, the barrier would break
    source = """
import asyncio, threading
barrier = threading.Barrier(2, timeout=5)
def meet():
    barrier.wait()
    return threading.current_thread().name
async def run(event, step):
    return await asyncio.gather(step.do("a", meet), step.do("b", meet))
"""
    names = output(advance(tmp_path, source))
    assert len(names) == 2 and all(n.startswith("tenantflow-step") for n in names)


def test_a_lone_sync_step_that_blocks_times_out_and_the_next_step_runs(tmp_path: Path) -> None:
    source = """
import time
async def run(event, step):
    try:
        await step.do("hang", lambda: time.sleep(30), timeout="200ms", retries={"limit": 0})
    except Exception as exc:
        caught = type(exc).__name__
    return [caught, await step.do("after", lambda: "ran")]
"""
    started = time.monotonic()
    answer = advance(tmp_path, source)
    assert output(answer) == ["StepError", "ran"]
    hang = next(e for e in answer["journal"] if e["name"] == "hang")
    assert hang["error"]["name"] == "StepTimeout"
    assert time.monotonic() - started < 20  # interrupted, not slept out


def test_a_body_catching_exception_does_not_swallow_its_timeout(tmp_path: Path) -> None:
    source = """
import time
def stubborn():
    try:
        time.sleep(30)
    except Exception:  # careless code: the timeout is not an Exception
        return "swallowed"
    return "slept"
async def run(event, step):
    return await step.do("stubborn", stubborn, timeout="200ms", retries={"limit": 0})
"""
    answer = advance(tmp_path, source)
    assert answer["outcome"]["kind"] == "Errored"
    assert answer["outcome"]["error"]["name"] == "StepTimeout"


def test_a_lone_sync_body_may_run_its_own_event_loop(tmp_path: Path) -> None:
    source = """
import asyncio
async def inner():
    await asyncio.sleep(0)
    return 7
async def run(event, step):
    return await step.do("own loop", lambda: asyncio.run(inner()))
"""
    assert output(advance(tmp_path, source)) == 7


def test_a_body_that_claims_sigalrm_has_it_only_for_its_step(tmp_path: Path) -> None:
    source = """
import signal, threading
def claim():
    signal.signal(signal.SIGALRM, lambda *_: None)
    return threading.current_thread().name
async def run(event, step):
    first = await step.do("claim", claim)
    second = await step.do("next", lambda: threading.current_thread().name)
    return [first, second, signal.getsignal(signal.SIGALRM) is signal.SIG_DFL]
"""
    assert output(advance(tmp_path, source)) == ["MainThread", "MainThread", True]


def test_a_workflow_holding_sigalrm_gets_its_steps_in_threads(tmp_path: Path) -> None:
    source = """
import signal, threading
async def run(event, step):
    signal.signal(signal.SIGALRM, lambda *_: None)
    try:
        return await step.do("where", lambda: threading.current_thread().name)
    finally:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
"""
    assert output(advance(tmp_path, source)).startswith("tenantflow-step")
