"""Wake lateness (many sleeps due in the same second) and event latency (send-event ->
the next step starts), p50/p99, on the local control plane."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from bench.cluster import (
    create_instances,
    instance_statuses,
    kubectl,
    operator_on_dev_cluster,
    tenant_with_definition,
)
from bench.machine import write
from tenantflow.durations import format_time, parse_time
from tenantflow.kube.client import Kube

SLEEPER = """
async def run(event, step):
    await step.sleep_until("alarm", event["payload"]["at"])
    return "woke"
"""
WAITER = """
async def run(event, step):
    await step.wait_for_event("go", type="go", timeout="1h")
    return await step.do("after", lambda: "ran")
"""
API = "tenantflow.dev/v1beta1"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 3)


async def _send_all(kubeconfig: Path, ns: str, names: list[str]) -> dict[str, float]:
    kube = await Kube.connect(str(kubeconfig))
    sent: dict[str, float] = {}

    async def one(name: str) -> None:
        sent[name] = time.time()
        await kube.patch(
            API,
            "WorkflowInstance",
            name,
            ns,
            {"spec": {"events": [{"type": "go", "payload": None}]}},
        )

    try:
        await asyncio.gather(*(one(n) for n in names))
    finally:
        await kube.close()
    return sent


def _wait(kubeconfig: Path, ns: str, count: int, phase: str) -> dict[str, dict[str, Any]]:
    deadline = time.time() + 600
    while time.time() < deadline:
        statuses = instance_statuses(kubeconfig, ns)
        if sum(st.get("phase") == phase for st in statuses.values()) >= count:
            return statuses
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {count} instances {phase}")


def main() -> None:
    sleepers = int(os.environ.get("BENCH_SLEEPERS", "200"))
    waiters = int(os.environ.get("BENCH_WAITERS", "50"))
    run = uuid.uuid4().hex[:5]
    with operator_on_dev_cluster() as (kubeconfig, _):
        limits = {"maxConcurrentInstances": 10000, "maxInstanceStartsPerSecond": 10000}
        ns = tenant_with_definition(kubeconfig, f"lat-{run}", "sleeper", SLEEPER, **limits)
        at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20 + sleepers / 50)
        create_instances(
            kubeconfig, ns, "sleeper", [f"s-{i}" for i in range(sleepers)], {"at": format_time(at)}
        )
        woke = _wait(kubeconfig, ns, sleepers, "Complete")
        lateness = [(parse_time(st["finishedAt"]) - at).total_seconds() for st in woke.values()]
        ns2 = tenant_with_definition(kubeconfig, f"ev-{run}", "waiter", WAITER, **limits)
        names = [f"w-{i}" for i in range(waiters)]
        create_instances(kubeconfig, ns2, "waiter", names)
        _wait(kubeconfig, ns2, waiters, "Waiting")
        sent = asyncio.run(_send_all(kubeconfig, ns2, names))
        done = _wait(kubeconfig, ns2, waiters, "Complete")
        latency = [
            parse_time(st["steps"][1]["startedAt"]).timestamp() - sent[n] for n, st in done.items()
        ]
        for tenant in (f"lat-{run}", f"ev-{run}"):
            kubectl(kubeconfig, "delete", "tenant", tenant, "--wait=false")
    write(
        "latency",
        {
            "sleepersDueTogether": sleepers,
            "wake_p50_s": _pct(lateness, 0.5),
            "wake_p99_s": _pct(lateness, 0.99),
            "waiters": waiters,
            "event_p50_s": _pct(latency, 0.5),
            "event_p99_s": _pct(latency, 0.99),
            "eventMeanSeconds": round(statistics.mean(latency), 3),
        },
    )


if __name__ == "__main__":
    main()
