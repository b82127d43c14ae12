"""Streamed log lines (issue 34.5): with `on_lines`, an advance's lines leave in batches as
they come, in order, none in the answer, with the streamed caps; threads printing at once
keep whole lines."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from typing import Any

import pytest

from tenantflow.engine import env as env_mod
from tenantflow.engine.env import DROPPED, STREAM_BATCH, STREAM_BATCH_BYTES, STREAM_EVERY, Lines
from tenantflow.engine.executor import advance

START = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def streamed(workflow: Any) -> tuple[list[Lines], Any]:
    batches: list[Lines] = []
    result = advance(workflow, started_at=START, now=lambda: START, on_lines=batches.append)
    return batches, result


def test_lines_leave_in_batches_in_order_and_none_stay_in_the_answer() -> None:
    total = 3 * STREAM_BATCH + 7

    async def wf(event: Any, step: Any, env: Any) -> str:
        env.log.info("first")

        def build() -> str:
            for i in range(total):
                print(f"line {i}")
            return "built"

        out: str = await step.do("build", build)
        env.log.info("last", lines=total)
        return out

    batches, result = streamed(wf)
    assert result.outcome.output == "built" and result.logs == []
    assert len(batches) >= 4 and all(len(b) <= STREAM_BATCH for b in batches)
    lines = [ln for b in batches for ln in b]
    assert lines[0]["message"] == "first" and lines[-1]["fields"] == {"lines": total}
    printed = [ln for ln in lines if ln["level"] == "stdout"]
    assert [ln["message"] for ln in printed] == [f"line {i}" for i in range(total)]
    assert all((ln["step"], ln["attempt"]) == ("build", 1) for ln in printed)


def test_past_the_streamed_cap_one_marker_says_how_many_were_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(env_mod, "MAX_STREAMED_LINES", 1_200)

    async def wf(event: Any, step: Any) -> None:
        for i in range(1_250):
            print(i)

    batches, _ = streamed(wf)
    lines = [ln for b in batches for ln in b]
    assert len(lines) == 1_201
    assert lines[-2]["message"] == "1199"
    assert lines[-1]["message"] == DROPPED.format(n=50)


def test_without_a_stream_the_answers_caps_hold() -> None:
    """The test kit and a query keep lines in the answer: 2,000 printed at most."""

    async def wf(event: Any, step: Any) -> None:
        for i in range(env_mod.MAX_OUTPUT_LINES + 1):
            print(i)

    result = advance(wf, started_at=START, now=lambda: START)
    assert len(result.logs) == env_mod.MAX_OUTPUT_LINES + 1  # and the marker
    assert result.logs[-1]["message"] == DROPPED.format(n=1)


def test_threads_printing_at_once_keep_whole_lines_and_every_one_leaves() -> None:
    """Sync step bodies run in threads: two printing at once never splice each other's
    lines (print() writes a line's text and its newline in two calls), lose one, or give
    it to the other step."""

    async def wf(event: Any, step: Any) -> None:
        barrier = threading.Barrier(2)

        def noisy(tag: str) -> str:
            barrier.wait()
            for i in range(2_000):
                print(f"{tag}-{i}")
            return tag

        await asyncio.gather(step.do("a", lambda: noisy("a")), step.do("b", lambda: noisy("b")))

    batches, _ = streamed(wf)
    assert all(len(b) <= STREAM_BATCH for b in batches)
    lines = [(ln["message"], ln["step"]) for b in batches for ln in b]
    for tag in ("a", "b"):
        mine = [m for m, step in lines if step == tag]
        assert mine == [f"{tag}-{i}" for i in range(2_000)], "whole lines, of their own step"


def test_a_printed_lone_surrogate_is_replaced_not_an_error() -> None:
    async def wf(event: Any, step: Any) -> str:
        print("bad \udcff byte")
        return "ok"

    batches, result = streamed(wf)
    assert result.outcome.output == "ok"
    assert batches[0][0]["message"] == "bad ? byte"


def test_a_quiet_step_s_lines_leave_while_it_works() -> None:
    """A few lines, then a long quiet body: they leave within STREAM_EVERY, not at its end."""
    sent_at: list[float] = []
    batches: list[Lines] = []

    def on_lines(batch: Lines) -> None:
        sent_at.append(time.monotonic())
        batches.append(batch)

    async def wf(event: Any, step: Any) -> float:
        def build() -> float:
            print("compiling")
            time.sleep(STREAM_EVERY * 2)
            return time.monotonic()

        ended: float = await step.do("build", build)
        return ended

    result = advance(wf, started_at=START, on_lines=on_lines)
    assert batches[0][0]["message"] == "compiling"
    assert sent_at[0] < result.outcome.output, "sent while the body still worked"


def test_a_batch_is_cut_by_its_size_too() -> None:
    """Control characters grow sixfold in JSON: 500 lines of 4 KiB of them would be a
    frame over the worker's cap; batches stay near STREAM_BATCH_BYTES of text."""

    async def wf(event: Any, step: Any) -> None:
        for _ in range(600):
            print("\x01" * 4000)

    batches, _ = streamed(wf)
    assert sum(len(b) for b in batches) == 600
    assert all(sum(len(ln["message"]) for ln in b) <= STREAM_BATCH_BYTES + 4096 for b in batches)


def test_a_message_whose_str_logs_does_not_deadlock_and_fields_are_copied() -> None:
    """str(message) is tenant code: it runs before the logger's lock is taken; a field
    changed after the call does not change (or break) the line already taken."""

    async def wf(event: Any, step: Any, env: Any) -> str:
        class Loud:
            def __str__(self) -> str:
                env.log.info("inner")
                return "outer"

        fields = {"n": 1}
        env.log.info(Loud(), data=fields)
        fields["n"] = object()  # no longer JSON
        return "ok"

    batches, result = streamed(wf)
    lines = [(ln["message"], ln["fields"]) for b in batches for ln in b]
    assert result.outcome.output == "ok"
    assert lines == [("inner", {}), ("outer", {"data": {"n": 1}})]
