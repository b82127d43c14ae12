"""Engine cost: replaying a 100-step journal (goal < 2 ms) and new steps per second."""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.machine import write
from tenantflow.engine import EngineLimits, Waiting, advance

JOURNAL_STEPS = 100


async def hundred_steps(event: Any, step: Any) -> Any:
    total = 0
    for i in range(JOURNAL_STEPS):
        total += await step.do(f"step-{i}", lambda i=i: i)
    await step.sleep("wait", "1h")
    return total


def replay_cost(repeats: int = 200) -> dict[str, float]:
    """Time to replay 100 completed steps up to a pending sleep (no step runs)."""
    limits = EngineLimits(batch_steps=10_000, batch_seconds=3600)
    full = advance(hundred_steps, limits=limits)
    assert isinstance(full.outcome, Waiting) and len(full.journal) == JOURNAL_STEPS + 1
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        again = advance(hundred_steps, journal=full.journal, limits=limits)
        samples.append(time.perf_counter() - t0)
        assert not again.changed and not again.executed
    samples.sort()
    return {
        "journalSteps": JOURNAL_STEPS,
        "replayMsMedian": round(statistics.median(samples) * 1000, 3),
        "replayMsP95": round(samples[int(len(samples) * 0.95)] * 1000, 3),
        "goalMs": 2.0,
    }


def new_steps_per_second(steps: int = 5000) -> dict[str, float]:
    """Fresh async steps executed in one advance, on one core."""

    async def many(event: Any, step: Any) -> Any:
        async def unit() -> int:
            return 1

        for i in range(steps):
            await step.do(f"s{i}", unit)

    limits = EngineLimits(max_steps=steps, batch_steps=steps, batch_seconds=3600)
    t0 = time.perf_counter()
    result = advance(many, limits=limits)
    elapsed = time.perf_counter() - t0
    assert len(result.executed) == steps
    return {"steps": steps, "seconds": round(elapsed, 3), "stepsPerSecond": round(steps / elapsed)}


def main() -> None:
    write("engine", {"replay": replay_cost(), "execute": new_steps_per_second()})


if __name__ == "__main__":
    main()
