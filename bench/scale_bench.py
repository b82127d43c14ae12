"""Scale: N instances each sleeping 10 minutes -> time until all are Waiting, operator RSS,
etcd database size.   BENCH_WAITING=50000 python -m bench scale   (default 5,000)

BENCH_WAIT_FOR=event: the same with instances waiting for an event (results in
scale_event.json)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from bench.cluster import (
    create_instances,
    instance_statuses,
    kubectl,
    metric_total,
    operator_on_dev_cluster,
    tenant_with_definition,
)
from bench.machine import write
from tenantflow.testing.devcluster import DevCluster

WORKFLOWS = {
    "sleep": "async def run(event, step):\n    await step.sleep('long', '10m')\n",
    "event": "async def run(event, step):\n"
    "    await step.wait_for_event('go', type='go', timeout='1h')\n",
}


def _rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return -1.0


def _etcd_mib() -> float:
    data = DevCluster().dir / "etcd"
    return round(sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) / 2**20, 1)


def main() -> None:
    count = int(os.environ.get("BENCH_WAITING", "5000"))
    wait_for = os.environ.get("BENCH_WAIT_FOR", "sleep")
    run = uuid.uuid4().hex[:5]
    with operator_on_dev_cluster() as (kubeconfig, operator):
        assert operator.proc is not None
        rss_before = _rss_mib(operator.proc.pid)
        tenant, port = f"scale-{run}", operator.metrics_port
        ns = tenant_with_definition(
            kubeconfig,
            tenant,
            "sleeper",
            WORKFLOWS[wait_for],
            maxConcurrentInstances=100000,
            maxInstanceStartsPerSecond=10000,
        )
        t0 = time.perf_counter()
        create_instances(kubeconfig, ns, "sleeper", [f"s-{i:06}" for i in range(count)])
        created = time.perf_counter() - t0
        waiting = 0
        while time.perf_counter() - t0 < 3600:
            # from the operator's gauge: listing 50,000 objects would load what we measure
            waiting = int(
                metric_total(port, "tenantflow_instances", f'phase="Waiting",tenant="{tenant}"')
            )
            print(f"\r  waiting {waiting}/{count}", end="", flush=True)
            if waiting >= count:
                break
            time.sleep(2)
        print()
        admitted = time.perf_counter() - t0
        rss = _rss_mib(operator.proc.pid)
        peak = _rss_mib(operator.proc.pid, "VmHWM")
        listed = instance_statuses(kubeconfig, ns)  # the truth, once, from the API server
        waiting = sum(st.get("phase") == "Waiting" for st in listed.values())
        kubectl(kubeconfig, "delete", "tenant", f"scale-{run}", "--wait=false")
    write(
        "scale" if wait_for == "sleep" else "scale_event",
        {
            "waitingFor": wait_for,
            "waiting_instances": waiting,
            "requested": count,
            "createSeconds": round(created, 1),
            "allWaitingSeconds": round(admitted, 1),
            "operator_rss_mib_before": rss_before,
            "operator_rss_mib_at_waiting": rss,
            "operator_rss_mib_peak": peak,
            "etcd_data_mib": _etcd_mib(),
        },
    )


if __name__ == "__main__":
    main()
