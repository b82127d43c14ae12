"""Throughput on the local control plane: N instances of a 3-step no-op workflow created as
fast as the API allows -> starts/s, completions/s, kube writes per instance ("live"); then
N more created while the operator is stopped, drained when it starts ("backlog": the
operator's own rate, free of the creation rate).

    python -m bench throughput            (N from BENCH_INSTANCES, default 5,000)
    BENCH_PROFILE=1 python -m bench throughput    (the live run under py-spy: bench/profile.py)
"""

from __future__ import annotations

import os
import time
import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from bench import cpu, profile
from bench.cluster import (
    create_instances,
    instance_statuses,
    kubectl,
    metric_total,
    operator_metrics,
    operator_on_dev_cluster,
    per_instance,
    samples,
    sandbox_cpu,
    stored_bytes,
    tenant_with_definition,
)
from bench.machine import write
from bench.workloads import THREE_STEPS
from tenantflow.durations import parse_time
from tenantflow_dev.devcluster.operator_process import OperatorProcess

WRITES = "tenantflow_kube_writes_total"  # every write during the run, events included
FINISHED = "tenantflow_instance_finished_total"


def measure(
    kubeconfig: Path,
    operator: OperatorProcess,
    tenant: str,
    ns: str,
    count: int,
    backlog: bool,
    parallel: int = 32,
) -> dict[str, Any]:
    """Create `count` instances (`parallel` requests in flight) and wait for all to finish.
    `backlog`: with the operator stopped while they are created, so its own rate shows, not
    the creation rate."""
    prefix, port = ("b" if backlog else "l"), operator.metrics_port
    if backlog:
        operator.stop()  # its counters start again from zero
    before = (0.0, 0.0) if backlog else (metric_total(port, WRITES), _finished(port, tenant))
    by_kind_before = {} if backlog else writes_by_kind(port)
    cpu_before = cpu.snapshot()
    t0 = time.perf_counter()
    names = [f"{prefix}-{n:05}" for n in range(count)]
    create_instances(kubeconfig, ns, "three", names, parallel=parallel)
    created = time.perf_counter() - t0
    if backlog:
        operator.start()
    writes_before, finished_before = before
    while True:
        done = int(_finished(port, tenant) - finished_before)
        print(f"\r  {'backlog' if backlog else 'live'}: finished {done}/{count}", end="")
        if done >= count or time.perf_counter() - t0 > 1800:
            break
        time.sleep(0.5)
    elapsed = time.perf_counter() - t0
    cpu_ms = cpu.per_instance_ms(cpu_before, cpu.snapshot(), count)
    print()
    statuses = [
        st for name, st in instance_statuses(kubeconfig, ns).items() if name.startswith(prefix)
    ]
    starts = sorted(st["startedAt"] for st in statuses if st.get("startedAt"))
    finishes = sorted(st["finishedAt"] for st in statuses if st.get("finishedAt"))
    span = _seconds(starts[0], starts[-1]) or 1e-9
    finish_span = _seconds(starts[0], finishes[-1]) or 1e-9
    return {
        "instances": count,
        "completed": sum(st.get("phase") == "Complete" for st in statuses),
        "createSeconds": round(created, 2),
        "create_per_s": round(count / created, 1),
        "totalSeconds": round(elapsed, 2),
        "starts_per_s": round(len(starts) / span, 1),
        "completions_per_s": round(len(finishes) / finish_span, 1),
        "kube_writes_per_instance": round((metric_total(port, WRITES) - writes_before) / count, 2),
        "cpu_ms_per_instance": cpu_ms,
        "cpu_ms_per_instance_total": round(sum(cpu_ms.values()), 1),
        "kube_writes_per_instance_by_kind": per_instance(
            by_kind_before, writes_by_kind(port), count
        ),
        # issue 34.5: a finished three-step instance's bytes in etcd before it is archived
        "finished_instance": stored_bytes(kubeconfig, ns, names[0]),
    }


def writes_by_kind(port: int) -> dict[str, float]:
    """tenantflow_kube_writes_total by `resource verb` (where the writes per instance go)."""
    out: dict[str, float] = {}
    for labels, value in samples(operator_metrics(port), WRITES):
        kind = f"{labels['resource']} {labels['verb']}"
        out[kind] = out.get(kind, 0.0) + value
    return out


def three_step_tenant(kubeconfig: Path, tenant: str, keep_finished_for: str | None = None) -> str:
    """A tenant with the three-step definition and limits no benchmark reaches (and its
    finished instances kept as objects for `keep_finished_for`, else the tenant's
    default): its namespace."""
    return tenant_with_definition(
        kubeconfig,
        tenant,
        "three",
        THREE_STEPS,
        history={"keepFinishedFor": keep_finished_for} if keep_finished_for else None,
        maxConcurrentInstances=10000,
        maxInstanceStartsPerSecond=10000,
    )


def main() -> None:
    count = int(os.environ.get("BENCH_INSTANCES", "5000"))
    tenant = f"tp-{uuid.uuid4().hex[:5]}"
    with operator_on_dev_cluster() as (kubeconfig, operator):
        ns = three_step_tenant(kubeconfig, tenant)
        with profile.sampled(tenant) if os.environ.get("BENCH_PROFILE") else nullcontext():
            live = measure(kubeconfig, operator, tenant, ns, count, backlog=False)
        backlog = measure(kubeconfig, operator, tenant, ns, count, backlog=True)
        kubectl(kubeconfig, "delete", "tenant", tenant, "--wait=false")
    write("throughput", {**live, "backlog": backlog, "sandboxCpu": sandbox_cpu()})


def _finished(port: int, tenant: str) -> float:
    return metric_total(port, FINISHED, f'tenant="{tenant}"')


def _seconds(a: str, b: str) -> float:
    return (parse_time(b) - parse_time(a)).total_seconds()


if __name__ == "__main__":
    main()
