"""A step attempt killed with its process (the kernel's memory limit, the advance deadline)
is a failed attempt of that step: the operator charges it, the step's own policy decides."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest

from tenantflow.engine.executor import advance
from tenantflow.engine.journal import dump, load
from tenantflow.engine.outcome import Complete, Errored
from tenantflow.lifecycle.instance_state import (
    MAX_LOST_BYTES,
    MAX_LOST_RECORDS,
    charge_lost_attempts,
    unapplied_lost_attempts,
)

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
OOM = {"name": "OutOfMemory", "message": "it exceeded the sandbox's memory limit (192Mi)"}


def workflow(calls: list[str], limit: int) -> Any:
    async def run(event: Any, step: Any) -> Any:
        await step.do("small", lambda: "fine")
        return await step.do("hog", lambda: calls.append("hog") or 42, retries={"limit": limit})

    return run


def test_the_first_attempt_lost_is_charged_and_retried_by_the_steps_policy() -> None:
    calls: list[str] = []
    first = advance(workflow([], 1), now=lambda: NOW, started_at=NOW)
    journal = [e for e in dump(first.journal) if e["name"] == "small"]  # "hog" was lost
    lost = charge_lost_attempts({}, journal, {"hog": 1}, OOM)
    assert lost == {"hog": {"attempts": 1, "error": OOM}}
    again = advance(
        workflow(calls, 1),
        journal=load(journal),
        lost_attempts=lost,
        now=lambda: NOW,
        started_at=NOW,
    )
    assert isinstance(again.outcome, Complete) and again.outcome.output == 42
    assert calls == ["hog"], "the second attempt ran"
    after = dump(again.journal)
    assert {e["name"]: e["attempts"] for e in after}["hog"] == 2
    assert unapplied_lost_attempts(lost, after) is None


def test_a_lost_attempt_that_spends_the_retries_errors_the_step_without_running_it() -> None:
    calls: list[str] = []
    lost = charge_lost_attempts({}, [], {"hog": 1}, OOM)
    result = advance(workflow(calls, 0), lost_attempts=lost, now=lambda: NOW, started_at=NOW)
    assert calls == [], "no further attempt: the step allowed none"
    assert isinstance(result.outcome, Errored)
    hog = {e["name"]: e for e in dump(result.journal)}["hog"]
    assert hog["state"] == "Errored" and hog["error"]["name"] == "OutOfMemory"
    assert hog["attempts"] == 1
    assert "OutOfMemory" in str(result.outcome.error)


def test_parallel_steps_keep_their_call_order() -> None:
    """The journal is positional: a lost step is applied where the code calls it."""

    async def run(event: Any, step: Any) -> Any:
        first = await step.do("first", lambda: 1)
        await step.sleep("nap", 0)
        a, b = await asyncio.gather(step.do("a", lambda: "a"), step.do("b", lambda: "b"))
        return [first, a, b]

    lost = charge_lost_attempts({}, [], {"b": 1}, OOM)
    result = advance(run, lost_attempts=lost, now=lambda: NOW, started_at=NOW)
    assert isinstance(result.outcome, Complete), result.outcome
    names = [e["name"] for e in dump(result.journal)]
    assert names == ["first", "nap", "a", "b"]
    assert {e["name"]: e["attempts"] for e in dump(result.journal)}["b"] == 2


def test_only_unfinished_do_steps_are_charged() -> None:
    journal = [
        {"name": "done", "kind": "do", "state": "Complete", "attempts": 1, "output": 1},
        {"name": "nap", "kind": "sleep", "state": "Waiting", "until": "2026-11-27T13:00:00Z"},
        {"name": "retry", "kind": "do", "state": "Retrying", "attempts": 3},
    ]
    lost = charge_lost_attempts({}, journal, {"done": 2, "nap": 1, "retry": 4}, OOM)
    assert lost == {"retry": {"attempts": 4, "error": OOM}}
    again = charge_lost_attempts(lost, journal, {"retry": 2}, OOM)
    assert again["retry"]["attempts"] == 4, "a count never goes down"


def test_every_attempt_is_reported_as_it_starts() -> None:
    seen: list[tuple[str, int]] = []

    async def run(event: Any, step: Any) -> Any:
        def flaky() -> str:
            if len(seen) < 3:
                raise RuntimeError("again")
            return "ok"

        return await step.do("flaky", flaky, retries={"limit": 3, "delay": 0})

    result = advance(
        run, now=lambda: NOW, started_at=NOW, on_attempt=lambda s, a: seen.append((s, a))
    )
    assert isinstance(result.outcome, Complete)
    assert seen == [("flaky", 1), ("flaky", 2), ("flaky", 3)]


def test_records_stay_bounded_in_count_and_bytes_whatever_is_reported() -> None:
    huge = {"name": "OutOfMemory" * 50, "message": "m" * 1_000_000}
    lost = {f"junk-{i}-" + "x" * 400: 999_999 for i in range(200)}
    lost |= {f"step-{i:03}-" + "y" * 230: 3 for i in range(100)}
    recorded: dict[str, Any] = {}
    for _ in range(5):
        patch = charge_lost_attempts(recorded, [], lost, huge)
        recorded = {k: v for k, v in {**recorded, **patch}.items() if v is not None}
        assert len(recorded) <= MAX_LOST_RECORDS
        assert len(json.dumps(recorded)) <= MAX_LOST_BYTES
    assert all(len(name) <= 253 for name in recorded), "names over 253 are never kept"


def test_a_bloated_record_from_before_the_bounds_is_trimmed_by_a_merge_patch() -> None:
    old = {
        f"s{i:04}": {"attempts": 1, "error": {"name": "X", "message": "m" * 5000}}
        for i in range(500)
    }
    patch = charge_lost_attempts(old, [], {"s0000": 2}, OOM)
    kept = {k: v for k, v in patch.items() if v is not None}
    assert len(kept) == MAX_LOST_RECORDS and sum(v is None for v in patch.values()) == 500 - 16
    assert kept["s0000"]["attempts"] == 2
    assert len(json.dumps(kept)) <= MAX_LOST_BYTES


def test_records_of_finished_or_applied_steps_are_deleted_after_an_advance() -> None:
    recorded = {
        "done": {"attempts": 9, "error": OOM},
        "applied": {"attempts": 1, "error": OOM},
        "pending": {"attempts": 2, "error": OOM},
    }
    journal = [
        {"name": "done", "kind": "do", "state": "Complete", "attempts": 1},
        {"name": "applied", "kind": "do", "state": "Retrying", "attempts": 1},
    ]
    assert unapplied_lost_attempts(recorded, journal) == {
        "done": None,
        "applied": None,
        "pending": recorded["pending"],
    }
