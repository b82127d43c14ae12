"""WorkQueue: one run per key at a time, coalesced re-runs, bounded workers, retries,
run-later."""

from __future__ import annotations

import asyncio
import datetime as dt

from tenantflow.controllers.ownership import Verdict
from tenantflow.controllers.work_queue import WorkQueue, namespace_in_key


def test_runs_are_coalesced_bounded_and_in_order() -> None:
    async def main() -> tuple[list[str], int]:
        ran: list[str] = []
        active, peak = 0, 0
        gate = asyncio.Event()

        async def work(key: str) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            ran.append(key)
            await gate.wait()
            active -= 1

        queue = WorkQueue(work, namespace_of=namespace_in_key, workers=3)
        for key in "abcdef":
            queue.request(key)
        await asyncio.sleep(0)
        queue.request("a")  # while a runs: one re-run later
        queue.request("a")
        queue.request("e")  # still queued: no duplicate
        assert len(queue) == 3  # d, e, f wait for a worker
        gate.set()
        await queue.drain()
        return ran, peak

    ran, peak = asyncio.run(main())
    assert ran == ["a", "b", "c", "d", "e", "f", "a"]
    assert peak == 3


def test_a_failing_key_backs_off_exponentially_and_its_success_forgets_it() -> None:
    async def main() -> tuple[list[str], list[float], int]:
        ran: list[str] = []

        async def work(key: str) -> None:
            ran.append(key)
            if key == "bad" and ran.count("bad") <= 3:
                raise RuntimeError("transient")

        queue = WorkQueue(work, namespace_of=namespace_in_key, workers=1)
        queue.BACKOFF_BASE, queue.BACKOFF_MAX = 10.0, 25.0
        queue.request("bad")
        queue.request("good")
        await queue.drain()
        assert ran == ["bad", "good"], "the others go on"
        delays = []
        for _ in range(3):  # each retry's delay, then the retry itself (time passes)
            due = queue.due_at("bad")
            assert due is not None
            delays.append((due - dt.datetime.now(dt.UTC)).total_seconds())
            queue.cancel_later("bad")
            queue.request("bad")
            await queue.drain()
        return ran, delays, queue.failures("bad")

    ran, delays, failures = asyncio.run(main())
    assert ran.count("bad") == 4, "retried until it succeeded"
    assert 9 < delays[0] <= 10 < 19 < delays[1] <= 20 < 24 < delays[2] <= 25, "doubled, capped"
    assert failures == 0, "a success forgets the failures"


def test_the_gate_runs_defers_or_drops_each_key_by_its_namespace() -> None:
    async def main() -> tuple[list[str], WorkQueue]:
        ran: list[str] = []

        async def work(key: str) -> None:
            ran.append(key)

        verdicts = {"ours": Verdict.ACT, "late": Verdict.DEFER, "theirs": Verdict.DROP}
        queue = WorkQueue(work, namespace_of=namespace_in_key, gate=verdicts.__getitem__)
        for key in ("ours/a", "late/b", "theirs/c"):
            queue.request_after(key, 3600)  # a wake-up each, far off
            queue.request(key)
        await queue.drain()
        return ran, queue

    ran, queue = asyncio.run(main())
    assert ran == ["ours/a"]
    assert queue.due_at("late/b") is not None, "deferred: asked again once the lease is renewed"
    assert queue.due_at("theirs/c") is None, "dropped: its wake-up is the new owner's"


def test_drop_forgets_every_key_of_the_lost_namespaces() -> None:
    async def main() -> tuple[list[str], int, WorkQueue]:
        ran: list[str] = []
        hold = asyncio.Event()

        async def work(key: str) -> None:
            ran.append(key)
            await hold.wait()

        queue = WorkQueue(work, namespace_of=namespace_in_key, workers=1)
        queue.request("lost/running")
        await asyncio.sleep(0)
        queue.request("lost/running")  # a re-run asked while it runs
        queue.request("lost/waiting")
        queue.request("kept/waiting")
        queue.request_after("lost/later", 3600)
        queue.request_after("kept/later", 3600)
        dropped = queue.drop(lambda namespace: namespace == "lost")
        hold.set()
        await queue.drain()
        return ran, dropped, queue

    ran, dropped, queue = asyncio.run(main())
    assert dropped == 3  # the re-run, the waiting one and the run-later
    assert ran == ["lost/running", "kept/waiting"], "the run going finishes; no re-run"
    assert queue.due_at("lost/later") is None and queue.due_at("kept/later") is not None


def test_run_later_replaces_an_earlier_time_and_request_within_keeps_the_sooner() -> None:
    async def main() -> list[str]:
        ran: list[str] = []

        async def work(key: str) -> None:
            ran.append(key)

        queue = WorkQueue(work, namespace_of=namespace_in_key)
        later = asyncio.create_task(queue.run_later_loop())
        queue.request_after("a", 0.05)
        queue.request_after("a", 10)  # moved: not at 0.05 s
        queue.request_within("b", 0.05)
        queue.request_within("b", 10)  # a sooner one stands
        queue.request_after("c", 0.05)
        queue.cancel_later("c")
        await asyncio.sleep(0.2)
        await queue.drain()
        assert queue.scheduled() == 1  # a, at 10 s
        later.cancel()
        return ran

    assert asyncio.run(main()) == ["b"]
