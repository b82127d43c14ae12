"""WorkQueue: one run per key at a time, coalesced re-runs, bounded workers, retries,
run-later."""

from __future__ import annotations

import asyncio

from tenantflow.controllers.work_queue import WorkQueue


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

        queue = WorkQueue(work, workers=3)
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


def test_a_failed_run_is_retried_later_and_others_go_on() -> None:
    async def main() -> list[str]:
        ran: list[str] = []

        async def work(key: str) -> None:
            ran.append(key)
            if key == "bad" and ran.count("bad") == 1:
                raise RuntimeError("transient")

        queue = WorkQueue(work, workers=1)
        queue.RETRY_DELAY = 0.05
        later = asyncio.create_task(queue.run_later_loop())
        queue.request("bad")
        queue.request("good")
        await queue.drain()
        assert ran == ["bad", "good"]
        await asyncio.sleep(0.1)
        await queue.drain()
        later.cancel()
        return ran

    assert asyncio.run(main()) == ["bad", "good", "bad"]


def test_run_later_replaces_an_earlier_time_and_request_within_keeps_the_sooner() -> None:
    async def main() -> list[str]:
        ran: list[str] = []

        async def work(key: str) -> None:
            ran.append(key)

        queue = WorkQueue(work)
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
