"""Sandbox dispatch: warm no-op advance p50/p99 (goal p50 < 5 ms) and runner cold start;
the same for TypeScript (issue 38: goal p50 < 20 ms, a Deno process per advance), and
three-step instances of both languages, one after another and two at a time."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.machine import write
from tenantflow.lifecycle.source import Code
from tenantflow.sandbox.client.transport import Endpoint, HttpTransport
from tenantflow.sandbox.jail.local import LocalSandboxes
from tenantflow.sandbox.protocol.payload import advance_payload

NOOP = "async def run(event, step):\n    return await step.do('noop', lambda: None)\n"
TS_NOOP = "export async function run(event, step) {\n  return step.do('noop', () => null);\n}\n"
THREE_STEPS = {
    "python": Code.single(
        "async def run(event, step):\n"
        "    a = await step.do('one', lambda: 1)\n"
        "    b = await step.do('two', lambda: a + 1)\n"
        "    return await step.do('three', lambda: b + 1)\n"
    ),
    "typescript": Code.single(
        "export async function run(event, step) {\n"
        "  const a = await step.do('one', async () => 1);\n"
        "  const b = await step.do('two', async () => a + 1);\n"
        "  return await step.do('three', async () => b + 1);\n"
        "}\n",
        "typescript",
    ),
}
TS_GOAL_P50_MS = 20.0


def payload_of(source: str | Code, instance: str = "i") -> dict[str, object]:
    return advance_payload(source=source, instance_id=instance, started_at="2030-01-01T00:00:00Z")


async def warm_calls(
    transport: HttpTransport,
    ep: Endpoint,
    calls: int,
    source: str | Code = NOOP,
    goal_ms: float = 5.0,
    gap: float = 0.0,
) -> dict[str, float]:
    """p50/p99 of `calls` advances of `source`, one after another, each checked; `gap`
    seconds between one's answer and the next call (0: back to back, each call meeting
    the last one's tail: its exit, the next spare's fork and preparation)."""
    payload = payload_of(source)
    samples = []
    for _ in range(calls):
        t = time.perf_counter()
        result = await transport.advance(ep, payload)
        samples.append(time.perf_counter() - t)
        assert result["outcome"]["kind"] == "Complete", result
        if gap:
            await asyncio.sleep(gap)
    samples.sort()
    return {
        "warmCalls": calls,
        "warmP50Ms": round(statistics.median(samples) * 1000, 2),
        "warmP99Ms": round(samples[int(calls * 0.99) - 1] * 1000, 2),
        "goalP50Ms": goal_ms,
    }


async def three_steps(transport: HttpTransport, ep: Endpoint, count: int) -> dict[str, object]:
    """Three-step instances (each one advance that runs all three) per language: the p50 of
    one at a time, and completions per second two at a time (the machine's two cores)."""
    out: dict[str, object] = {}
    for language, code in THREE_STEPS.items():
        one = await warm_calls(transport, ep, count, code, 0.0)
        queue = list(range(count))

        async def worker(code: Code = code, queue: list[int] = queue) -> None:
            while queue:
                result = await transport.advance(ep, payload_of(code, f"i{queue.pop()}"))
                assert result["outcome"]["output"] == 3, result

        t = time.perf_counter()
        await asyncio.gather(worker(), worker())
        out[language] = {
            "p50Ms": one["warmP50Ms"],
            "p99Ms": one["warmP99Ms"],
            "completionsPerSecondTwoAtATime": round(count / (time.perf_counter() - t), 1),
        }
    return out


async def measure(root: Path, calls: int = 300) -> dict[str, object]:
    sandboxes = LocalSandboxes(root / "sockets")
    transport = HttpTransport()
    data = root / "data"
    try:
        t0 = time.perf_counter()
        ep = await sandboxes.endpoint("bench", str(data), b"bench-key")
        payload = advance_payload(source=NOOP, instance_id="i", started_at="2030-01-01T00:00:00Z")
        first = await transport.advance(ep, payload)
        cold = time.perf_counter() - t0
        assert first["outcome"]["kind"] == "Complete"
        python = await warm_calls(transport, ep, calls)
        t1 = time.perf_counter()
        ts_code = Code.single(TS_NOOP, "typescript")
        ts_first = await transport.advance(ep, payload_of(ts_code))
        ts_cold = time.perf_counter() - t1
        assert ts_first["outcome"]["kind"] == "Complete", ts_first
        typescript = await warm_calls(transport, ep, calls, ts_code, TS_GOAL_P50_MS)
        return {
            "coldStartSeconds": round(cold, 3),
            **python,
            "typescript": {"firstAdvanceSeconds": round(ts_cold, 3), **typescript},
            "threeStepInstances": await three_steps(transport, ep, calls // 3),
        }
    finally:
        await transport.close()
        sandboxes.stop_all()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write("sandbox", asyncio.run(measure(Path(tmp))))


if __name__ == "__main__":
    main()
