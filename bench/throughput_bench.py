"""Throughput on the local control plane: N instances of a 3-step no-op workflow created as
fast as the API allows -> starts/s, completions/s, kube writes per instance.

    python -m bench throughput            (N from BENCH_INSTANCES, default 500)
"""

from __future__ import annotations

import os
import time
import uuid

from bench.cluster import (
    create_instances,
    instance_statuses,
    kubectl,
    metric_total,
    operator_on_dev_cluster,
    tenant_with_definition,
)
from bench.machine import write
from tenantflow.durations import parse_time

WRITES, WFI = "tenantflow_kube_writes_total", 'resource="workflowinstance'
FINISHED = "tenantflow_instance_finished_total"
THREE_STEPS = """
async def run(event, step):
    a = await step.do("one", lambda: 1)
    b = await step.do("two", lambda: a + 1)
    return await step.do("three", lambda: a + b)
"""


def main() -> None:
    count = int(os.environ.get("BENCH_INSTANCES", "500"))
    run = uuid.uuid4().hex[:5]
    tenant = f"tp-{run}"
    with operator_on_dev_cluster() as (kubeconfig, operator):
        ns = tenant_with_definition(
            kubeconfig,
            tenant,
            "three",
            THREE_STEPS,
            maxConcurrentInstances=10000,
            maxInstanceStartsPerSecond=10000,
        )
        port = operator.metrics_port
        writes_before = metric_total(port, WRITES, WFI)
        t0 = time.perf_counter()
        create_instances(kubeconfig, ns, "three", [f"i-{n:05}" for n in range(count)])
        created = time.perf_counter() - t0
        while True:
            done = int(metric_total(port, FINISHED, f'tenant="{tenant}"'))
            print(f"\r  finished {done}/{count}", end="", flush=True)
            if done >= count or time.perf_counter() - t0 > 1800:
                break
            time.sleep(0.5)
        elapsed = time.perf_counter() - t0
        print()
        statuses = list(instance_statuses(kubeconfig, ns).values())
        starts = sorted(st["startedAt"] for st in statuses if st.get("startedAt"))
        finishes = sorted(st["finishedAt"] for st in statuses if st.get("finishedAt"))
        span = _seconds(starts[0], starts[-1]) or 1e-9
        finish_span = _seconds(starts[0], finishes[-1]) or 1e-9
        writes = metric_total(port, WRITES, WFI) - writes_before
        kubectl(kubeconfig, "delete", "tenant", tenant, "--wait=false")
    write(
        "throughput",
        {
            "instances": count,
            "completed": sum(st.get("phase") == "Complete" for st in statuses),
            "createSeconds": round(created, 2),
            "totalSeconds": round(elapsed, 2),
            "starts_per_s": round(len(starts) / span, 1),
            "completions_per_s": round(len(finishes) / finish_span, 1),
            "kube_writes_per_instance": round(writes / count, 2),
        },
    )


def _seconds(a: str, b: str) -> float:
    return (parse_time(b) - parse_time(a)).total_seconds()


if __name__ == "__main__":
    main()
