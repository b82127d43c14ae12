"""KeyedWorkQueue: one run per key at a time, coalesced re-runs, bounded workers, retries."""

from __future__ import annotations

import asyncio

from tenantflow.controllers.runtime import KeyedWorkQueue


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

        queue = KeyedWorkQueue(work, workers=3)
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

        queue = KeyedWorkQueue(work, workers=1)
        queue.RETRY_DELAY = 0.05
        queue.request("bad")
        queue.request("good")
        await queue.drain()
        assert ran == ["bad", "good"]
        await asyncio.sleep(0.1)
        await queue.drain()
        return ran

    assert asyncio.run(main()) == ["bad", "good", "bad"]
