"""Sandbox dispatch: warm no-op advance p50/p99 (goal p50 < 5 ms) and runner cold start."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.machine import write
from tenantflow.sandbox.client.transport import Endpoint, HttpTransport
from tenantflow.sandbox.jail.local import LocalSandboxes
from tenantflow.sandbox.protocol.payload import advance_payload

NOOP = "async def run(event, step):\n    return await step.do('noop', lambda: None)\n"


async def warm_calls(transport: HttpTransport, ep: Endpoint, calls: int) -> dict[str, float]:
    """p50/p99 of `calls` no-op advances, one after another, each checked."""
    payload = advance_payload(source=NOOP, instance_id="i", started_at="2030-01-01T00:00:00Z")
    samples = []
    for _ in range(calls):
        t = time.perf_counter()
        result = await transport.advance(ep, payload)
        samples.append(time.perf_counter() - t)
        assert result["outcome"]["kind"] == "Complete", result
    samples.sort()
    return {
        "warmCalls": calls,
        "warmP50Ms": round(statistics.median(samples) * 1000, 2),
        "warmP99Ms": round(samples[int(calls * 0.99) - 1] * 1000, 2),
        "goalP50Ms": 5.0,
    }


async def measure(root: Path, calls: int = 300) -> dict[str, float]:
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
        return {"coldStartSeconds": round(cold, 3), **await warm_calls(transport, ep, calls)}
    finally:
        await transport.close()
        sandboxes.stop_all()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write("sandbox", asyncio.run(measure(Path(tmp))))


if __name__ == "__main__":
    main()
