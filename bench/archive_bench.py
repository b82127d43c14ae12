"""Steady state with history (issue 34): three-step instances that are archived into
their tenant's history store and deleted 1 s after they finish
(`spec.history.keepFinishedFor`), as at a platform running at a rate; then the web UI on
that namespace, whose instances now live only in the history.

What the throughput benchmark leaves out (its tenant keeps finished instances for an
hour): the archive's runner call, the delete and their watch events, per instance.

BENCH_INSTANCES=2000 python -m bench archive
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from bench import cpu, ui_bench
from bench.cluster import (
    apiserver_writes,
    create_instances,
    instance_statuses,
    kubectl,
    metric_total,
    operator_on_dev_cluster,
    per_instance,
)
from bench.machine import write
from bench.throughput_bench import WRITES, three_step_tenant, writes_by_kind

ARCHIVES = "tenantflow_archives_total"
KEEP_FINISHED_FOR = "1s"


def main() -> None:
    count = int(os.environ.get("BENCH_INSTANCES", "2000"))
    tenant = f"ar-{uuid.uuid4().hex[:5]}"
    with operator_on_dev_cluster() as (kubeconfig, operator):
        ns = three_step_tenant(kubeconfig, tenant, keep_finished_for=KEEP_FINISHED_FOR)
        port, archived = operator.metrics_port, f'result="archived",tenant="{tenant}"'
        writes_before, cpu_before = metric_total(port, WRITES), cpu.snapshot()
        ours_before, all_before = writes_by_kind(port), apiserver_writes(kubeconfig)
        t0 = time.perf_counter()
        create_instances(kubeconfig, ns, "three", [f"a-{n:05}" for n in range(count)])
        created = time.perf_counter() - t0
        done = 0
        while done < count and time.perf_counter() - t0 < 1800:
            done = int(metric_total(port, ARCHIVES, archived))
            print(f"\r  archived {done}/{count}", end="", flush=True)
            time.sleep(0.5)
        elapsed = time.perf_counter() - t0
        cpu_ms = cpu.per_instance_ms(cpu_before, cpu.snapshot(), count)
        ours, everyone = writes_by_kind(port), apiserver_writes(kubeconfig)
        print()
        results: dict[str, Any] = {
            "instances": count,
            "keepFinishedFor": KEEP_FINISHED_FOR,
            "archived": done,
            "failedArchives": int(
                metric_total(port, ARCHIVES, f'result="failed",tenant="{tenant}"')
            ),
            "left_as_objects": len(instance_statuses(kubeconfig, ns)),
            "createSeconds": round(created, 2),
            "totalSeconds": round(elapsed, 2),
            # created, run, archived and deleted: what a tenant at this rate sustains
            "archived_per_s": round(done / elapsed, 1),
            "kube_writes_per_instance": round(
                (metric_total(port, WRITES) - writes_before) / count, 2
            ),
            "kube_writes_per_instance_by_kind": per_instance(ours_before, ours, count),
            # every client's: the controllers' (quota, garbage collector) beside ours
            "apiserver_writes_per_instance": per_instance(all_before, everyone, count),
            "cpu_ms_per_instance": cpu_ms,
            "cpu_ms_per_instance_total": round(sum(cpu_ms.values()), 1),
            **ui_bench.measure_archived(kubeconfig, ns),
        }
        kubectl(kubeconfig, "delete", "tenant", tenant, "--wait=false")
    write("archive", results)


if __name__ == "__main__":
    main()
