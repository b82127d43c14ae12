"""Scale: N instances each sleeping 10 minutes -> time until all are Waiting, operator RSS,
etcd database size, and the web UI's first screen with all of them in the cluster.
BENCH_WAITING=50000 python -m bench scale   (default 5,000)

BENCH_WAIT_FOR=event: the same with instances waiting for an event (results in
scale_event.json)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from bench import ui_bench
from bench.cluster import (
    create_instances,
    instance_statuses,
    kubectl,
    metric_total,
    operator_on_dev_cluster,
    tenant_with_definition,
)
from bench.machine import write
from tenantflow_dev.devcluster import DevCluster
from tenantflow_dev.devcluster.operator_process import OperatorProcess
from tenantflow_dev.devcluster.state import State

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


def control_plane_rss_mib() -> dict[str, float]:
    """RSS of the dev cluster's kube-apiserver and etcd (they hold the instances too)."""
    state = State.load(DevCluster().dir / "state.json")
    pids = state.pids if state else {}
    return {name: _rss_mib(pids[name]) for name in ("kube-apiserver", "etcd") if name in pids}


def sleepers(
    kubeconfig: Path,
    operator: OperatorProcess,
    count: int,
    wait_for: str = "sleep",
    parallel: int = 32,
) -> dict[str, Any]:
    """`count` instances each sleeping 10 minutes (or waiting for an event), created with
    `parallel` requests in flight: time until all are Waiting, and memory."""
    assert operator.proc is not None
    run = uuid.uuid4().hex[:5]
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
    names = [f"s-{i:06}" for i in range(count)]
    create_instances(kubeconfig, ns, "sleeper", names, parallel=parallel)
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
        time.sleep(0.5 if count <= 5000 else 2)
    print()
    admitted = time.perf_counter() - t0
    rss = _rss_mib(operator.proc.pid)
    peak = _rss_mib(operator.proc.pid, "VmHWM")
    control_plane = control_plane_rss_mib()
    listed = instance_statuses(kubeconfig, ns)  # the truth, once, from the API server
    waiting = sum(st.get("phase") == "Waiting" for st in listed.values())
    ui = ui_bench.measure(kubeconfig, ns)  # the web UI with all of them in the cluster
    kubectl(kubeconfig, "delete", "tenant", tenant, "--wait=false")
    return {
        "waitingFor": wait_for,
        "waiting_instances": waiting,
        "requested": count,
        "createSeconds": round(created, 1),
        "allWaitingSeconds": round(admitted, 1),
        "operator_rss_mib_before": rss_before,
        "operator_rss_mib_at_waiting": rss,
        "operator_rss_mib_peak": peak,
        "apiserver_rss_mib_at_waiting": control_plane.get("kube-apiserver"),
        "etcd_rss_mib_at_waiting": control_plane.get("etcd"),
        "etcd_data_mib": _etcd_mib(),
        **ui,
    }


def main() -> None:
    count = int(os.environ.get("BENCH_WAITING", "5000"))
    wait_for = os.environ.get("BENCH_WAIT_FOR", "sleep")
    with operator_on_dev_cluster() as (kubeconfig, operator):
        results = sleepers(kubeconfig, operator, count, wait_for)
    write("scale" if wait_for == "sleep" else "scale_event", results)


if __name__ == "__main__":
    main()
