"""Time to Ready: 1 tenant, then 100 tenants created at once (local control plane).

Uses the dev cluster (started if needed) and a fresh operator process; tenants are
deleted afterwards.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import yaml

from bench.cluster import kubectl, operator_on_dev_cluster
from bench.machine import write


def time_to_ready(kubeconfig: Path, count: int) -> dict[str, float]:
    run = uuid.uuid4().hex[:5]
    names = [f"bench-{run}-{i}" for i in range(count)]
    docs = [
        {
            "apiVersion": "tenantflow.dev/v1beta1",
            "kind": "Tenant",
            "metadata": {"name": n, "labels": {"bench": run}},
            "spec": {},
        }
        for n in names
    ]
    started = time.perf_counter()
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    ready_at: dict[str, float] = {}
    while len(ready_at) < count and time.perf_counter() - started < 600:
        out = kubectl(
            kubeconfig,
            "get",
            "tenants",
            "-l",
            f"bench={run}",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.phase}{'\\n'}{end}",
        )
        for line in out.splitlines():
            name, _, phase = line.partition(" ")
            if phase == "Ready" and name not in ready_at:
                ready_at[name] = time.perf_counter() - started
        time.sleep(0.2)
    kubectl(kubeconfig, "delete", "tenants", "-l", f"bench={run}", "--wait=false")
    times = sorted(ready_at.values())
    return {
        "tenants": count,
        "ready": len(times),
        "firstReadySeconds": round(times[0], 2) if times else -1,
        "p50ReadySeconds": round(times[len(times) // 2], 2) if times else -1,
        "allReadySeconds": round(times[-1], 2) if len(times) == count else -1,
    }


def main() -> None:
    with operator_on_dev_cluster() as (kubeconfig, _):
        write(
            "tenants",
            {"one": time_to_ready(kubeconfig, 1), "hundred": time_to_ready(kubeconfig, 100)},
        )


if __name__ == "__main__":
    main()
