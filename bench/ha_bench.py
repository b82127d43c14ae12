"""Replicas: throughput with 1, 2 and 4 operator replicas sharing the shards, each
replica's CPU per instance, and failover time over repeated kills of a shard's holder.

    python -m bench ha        (N from BENCH_HA_INSTANCES, default 1,200; 4 tenants)

On 2 cores the API server and the sandboxes bound the total whatever the replica count:
the figure that matters is each replica's CPU per instance (what one replica costs) and
that the replicas' shares add up to the whole.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.cluster import create_instances, dev_cluster_with_crds, instance_statuses, kubectl
from bench.machine import write
from bench.throughput_bench import three_step_tenant
from tenantflow.controllers.shards import ShardSettings
from tenantflow.durations import parse_time
from tenantflow.tenancy.sharding import shard_of
from tenantflow_dev.devcluster.operator_process import OperatorProcess

TENANTS = 4
KILLS = 5


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _replicas(kubeconfig: Path, count: int) -> Iterator[list[OperatorProcess]]:
    with tempfile.TemporaryDirectory() as tmp:
        ops = [
            OperatorProcess(kubeconfig, Path(tmp) / f"op{i}.log", identity=f"bench-{i}")
            for i in range(count)
        ]
        for op in ops:
            op.start()
        try:
            yield ops
        finally:
            for op in ops:
                op.stop()


def _holder(kubeconfig: Path, namespace: str) -> str:
    settings = ShardSettings()
    return kubectl(
        kubeconfig, "get", "lease", f"tenantflow-shard-{shard_of(namespace, settings.shards)}",
        "-n", settings.namespace, "-o", "jsonpath={.spec.holderIdentity}",
    )  # fmt: skip


def throughput(kubeconfig: Path, replicas: int, count: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:4]
    tenants = [f"ha{run}-{i}" for i in range(TENANTS)]
    with _replicas(kubeconfig, replicas) as ops:
        namespaces = [three_step_tenant(kubeconfig, t) for t in tenants]
        time.sleep(2 * ShardSettings().renew)  # the replicas settle their shares
        cpu = [_cpu_s(op.proc.pid) for op in ops if op.proc]
        t0 = time.perf_counter()
        for ns in namespaces:
            create_instances(
                kubeconfig, ns, "three", [f"i-{n:05}" for n in range(count // TENANTS)]
            )
        done: list[dict[str, Any]] = []
        while time.perf_counter() - t0 < 900:
            done = [
                st
                for ns in namespaces
                for st in instance_statuses(kubeconfig, ns).values()
                if st.get("phase") == "Complete"
            ]
            if len(done) >= count:
                break
            time.sleep(2)
        used = [
            _cpu_s(op.proc.pid) - before for op, before in zip(ops, cpu, strict=True) if op.proc
        ]
        holders = {_holder(kubeconfig, ns) for ns in namespaces}
        for t in tenants:
            kubectl(kubeconfig, "delete", "tenant", t, "--wait=false")
    starts = sorted(st["startedAt"] for st in done)
    span = (_parse(starts[-1]) - _parse(starts[0])) or 1.0
    return {
        "replicas": replicas,
        "instances": len(done),
        "starts_per_s": round(len(done) / span, 1),
        "replica_cpu_ms_per_instance": [round(u * 1000 / max(len(done), 1), 2) for u in used],
        "replicas_holding_these_tenants": len(holders),
    }


def failover(kubeconfig: Path) -> dict[str, Any]:
    """Two replicas; the holder of a tenant's shard SIGKILLed, again and again: seconds
    until the shard's Lease names the other."""
    tenant = f"hafo-{uuid.uuid4().hex[:4]}"
    times = []
    with _replicas(kubeconfig, 2) as ops:
        ns = three_step_tenant(kubeconfig, tenant)
        by_id = {op.identity: op for op in ops}
        for _ in range(KILLS):
            deadline = time.monotonic() + 60
            while _holder(kubeconfig, ns) not in by_id and time.monotonic() < deadline:
                time.sleep(0.5)
            victim = by_id[_holder(kubeconfig, ns)]
            victim.kill()
            t0 = time.monotonic()
            while _holder(kubeconfig, ns) == victim.identity:
                time.sleep(0.1)
            times.append(time.monotonic() - t0)
            victim.start()  # back under the same identity, a member again
            time.sleep(2 * ShardSettings().renew)
        kubectl(kubeconfig, "delete", "tenant", tenant, "--wait=false")
    return {
        "kills": KILLS,
        "failover_s": [round(t, 2) for t in times],
        "failover_p50_s": round(statistics.median(times), 2),
        "failover_p99_s": round(max(times), 2),  # of 5: the worst
        "lease_seconds": ShardSettings().lease,
        "renew_seconds": ShardSettings().renew,
    }


def _parse(stamp: str) -> float:
    return parse_time(stamp).timestamp()


def main() -> None:
    count = int(os.environ.get("BENCH_HA_INSTANCES", "1200"))
    kubeconfig = dev_cluster_with_crds()
    results = {
        "scale": [throughput(kubeconfig, r, count) for r in (1, 2, 4)],
        **failover(kubeconfig),
    }
    write("ha", results)


if __name__ == "__main__":
    main()
