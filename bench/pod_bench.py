"""Sandbox pods on the dev cluster's real node: cold start (Tenant created → its first step
executed, in a sandbox pod that did not exist) and warm dispatch p50/p99 through the cluster
transport (the operator's own client: EndpointSlice address, signed HTTP, runner → zygote →
fresh child), goal p50 < 5 ms."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from bench.cluster import apply, kubectl, operator_on_dev_cluster, tenant_doc, wait_tenant_ready
from bench.machine import write
from bench.sandbox_bench import NOOP, warm_calls
from tenantflow.controllers.sandboxes import Sandboxes
from tenantflow.errors import DevClusterError
from tenantflow.kube.client import Kube
from tenantflow.sandbox.transport import HttpTransport
from tenantflow.testing.devcluster import DevCluster

COLD_RUNS = 3


def _status(kubeconfig: Path, ns: str) -> dict[str, Any]:
    out = kubectl(kubeconfig, "get", "wfi", "first", "-n", ns, "-o", "yaml")
    return dict((yaml.safe_load(out) or {}).get("status") or {})


def cold_start(kubeconfig: Path) -> float:
    """Seconds from `kubectl apply` of a new Tenant (with its definition and an instance
    applied as soon as its namespace exists) to the instance's first step Complete."""
    tenant = f"cold-{uuid.uuid4().hex[:6]}"
    ns = f"tenant-{tenant}"
    t0 = time.perf_counter()
    apply(kubeconfig, tenant_doc(tenant))
    docs = [
        {
            "apiVersion": "tenantflow.dev/v1beta1",
            "kind": "WorkflowDefinition",
            "metadata": {"name": "noop", "namespace": ns},
            "spec": {"source": {"inline": NOOP}},
        },
        {
            "apiVersion": "tenantflow.dev/v1beta1",
            "kind": "WorkflowInstance",
            "metadata": {"name": "first", "namespace": ns},
            "spec": {"workflowRef": {"name": "noop"}},
        },
    ]
    while True:
        try:
            apply(kubeconfig, *docs)
            break
        except Exception:  # the namespace is not there yet
            time.sleep(0.05)
    while True:
        steps = _status(kubeconfig, ns).get("steps") or []
        if steps and steps[0].get("state") == "Complete":
            seconds = time.perf_counter() - t0
            break
        if time.perf_counter() - t0 > 180:
            raise DevClusterError(f"{ns}: the first step did not complete in 180 s")
        time.sleep(0.05)
    kubectl(kubeconfig, "delete", "tenant", tenant, "--wait=false")
    return seconds


async def warm_dispatch(kubeconfig: Path, tenant: str, calls: int = 300) -> dict[str, float]:
    kube = await Kube.connect(str(kubeconfig))
    transport = HttpTransport()
    try:
        ep = await Sandboxes(kube, mode="cluster").endpoint(tenant)
        await warm_calls(transport, ep, 10)  # connections and the zygote's caches warm
        return await warm_calls(transport, ep, calls)
    finally:
        await transport.close()
        await kube.close()


def main() -> None:
    if not DevCluster().up() or not DevCluster().has_node():
        raise DevClusterError("the pod benchmark needs the dev cluster's real node")
    with operator_on_dev_cluster() as (kubeconfig, _):
        colds = [cold_start(kubeconfig) for _ in range(COLD_RUNS)]
        tenant = f"warm-{uuid.uuid4().hex[:6]}"
        apply(kubeconfig, tenant_doc(tenant))
        wait_tenant_ready(kubeconfig, tenant)
        kubectl(
            kubeconfig,
            "wait",
            "--for=condition=Ready",
            "pod",
            "-l",
            "app.kubernetes.io/name=sandbox",
            "-n",
            f"tenant-{tenant}",
            "--timeout=120s",
        )
        warm = asyncio.run(warm_dispatch(kubeconfig, tenant))
        kubectl(kubeconfig, "delete", "tenant", tenant, "--wait=false")
    write(
        "pods",
        {
            "coldStartSeconds": round(statistics.median(colds), 2),
            "coldStartRuns": [round(c, 2) for c in colds],
            **warm,
            "what": "cold: Tenant applied -> first step Complete in a new sandbox pod; "
            "warm: one no-op advance through the cluster transport",
        },
    )


if __name__ == "__main__":
    main()
