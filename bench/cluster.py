"""Shared by the cluster benchmarks: the dev cluster, CRDs, an operator, kubectl."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tenantflow.kube.client import Kube
from tenantflow.vocabulary import API_VERSION
from tenantflow_dev.devcluster import DevCluster, versions
from tenantflow_dev.devcluster.operator_process import OperatorProcess

ROOT = Path(__file__).resolve().parent.parent


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [str(versions.bin_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def dev_cluster_with_crds() -> Path:
    """The dev cluster (started if needed) with the CRDs installed: its kubeconfig."""
    kubeconfig = DevCluster().up()
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    return kubeconfig


@contextlib.contextmanager
def operator_on_dev_cluster() -> Iterator[tuple[Path, OperatorProcess]]:
    """Yield (kubeconfig, operator) on the dev cluster with the CRDs installed."""
    kubeconfig = dev_cluster_with_crds()
    with tempfile.TemporaryDirectory() as tmp:
        op = OperatorProcess(kubeconfig, Path(tmp) / "operator.log")
        op.start()
        try:
            yield kubeconfig, op
        finally:
            op.stop()


def apply(kubeconfig: Path, *docs: dict[str, Any]) -> None:
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(list(docs)))


SANDBOX_CPU = "BENCH_SANDBOX_CPU"  # the sandbox's CPU limit in the benchmarks (default: 1)


def sandbox_cpu() -> str:
    """The benchmarks' sandbox CPU limit, as results record it (the chart's default: 1)."""
    return os.environ.get(SANDBOX_CPU) or "1"


def tenant_doc(tenant: str, history: dict[str, Any] | None = None, **limits: int) -> dict[str, Any]:
    """A benchmark's Tenant; its sandbox's CPU limit from BENCH_SANDBOX_CPU if set (what a
    tenant given more than the default 1 CPU gets: issue 40)."""
    spec: dict[str, Any] = {"limits": limits, **({"history": history} if history else {})}
    if cpu := os.environ.get(SANDBOX_CPU):
        spec["sandbox"] = {"resources": {"limits": {"cpu": cpu, "memory": "512Mi"}}}
    return {
        "apiVersion": "tenantflow.dev/v1beta1",
        "kind": "Tenant",
        "metadata": {"name": tenant},
        "spec": spec,
    }


def wait_tenant_ready(kubeconfig: Path, tenant: str) -> None:
    kubectl(
        kubeconfig,
        "wait",
        "--for=jsonpath={.status.phase}=Ready",
        f"tenant/{tenant}",
        "--timeout=120s",
    )


def tenant_with_definition(
    kubeconfig: Path,
    tenant: str,
    definition: str,
    source: str,
    history: dict[str, Any] | None = None,
    **limits: int,
) -> str:
    """A Ready tenant whose namespace holds a Ready definition; returns the namespace."""
    apply(kubeconfig, tenant_doc(tenant, history, **limits))
    wait_tenant_ready(kubeconfig, tenant)
    ns = f"tenant-{tenant}"
    apply(
        kubeconfig,
        {
            "apiVersion": "tenantflow.dev/v1beta1",
            "kind": "WorkflowDefinition",
            "metadata": {"name": definition, "namespace": ns},
            "spec": {"source": {"inline": source}},
        },
    )
    kubectl(
        kubeconfig,
        "wait",
        "--for=jsonpath={.status.activeRevision}=1",
        f"wfd/{definition}",
        "-n",
        ns,
        "--timeout=60s",
    )
    return ns


def create_instances(
    kubeconfig: Path,
    ns: str,
    definition: str,
    names: list[str],
    params: Any = None,
    parallel: int = 32,
) -> None:
    """POST WorkflowInstances from `parallel` concurrent requests (kubectl would be the
    bottleneck of every benchmark)."""

    async def run() -> None:
        kube = await Kube.connect(str(kubeconfig), connections=parallel, proxy_from_env=False)
        gate = asyncio.Semaphore(parallel)

        async def one(name: str) -> None:
            async with gate:
                await kube.create(
                    {
                        "apiVersion": "tenantflow.dev/v1beta1",
                        "kind": "WorkflowInstance",
                        "metadata": {"name": name, "namespace": ns},
                        "spec": {"workflowRef": {"name": definition}, "params": params},
                    }
                )

        try:
            await asyncio.gather(*(one(n) for n in names))
        finally:
            await kube.close()

    asyncio.run(run())


def instance_statuses(kubeconfig: Path, ns: str) -> dict[str, dict[str, Any]]:
    items = json.loads(kubectl(kubeconfig, "get", "wfi", "-n", ns, "-o", "json"))["items"]
    return {i["metadata"]["name"]: i.get("status") or {} for i in items}


def operator_metrics(port: int) -> str:
    """The operator's /metrics, as Prometheus text."""
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()


def metric_total(port: int, name: str, labels: str = "") -> float:
    """Sum of a metric's samples on the operator's /metrics whose labels contain `labels`,
    written in the order /metrics prints them (by name) (progress without listing
    thousands of objects, which would load the API server)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in operator_metrics(port).splitlines()
        if line.startswith(name + "{") and labels in line
    )


def samples(text: str, name: str) -> Iterator[tuple[dict[str, str], float]]:
    """The labels and value of each sample called `name` in Prometheus text."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                yield sample.labels, sample.value


def stored_bytes(kubeconfig: Path, ns: str, name: str) -> dict[str, int]:
    """What one WorkflowInstance weighs as stored (etcd holds a custom resource as this
    JSON): the whole object, its managedFields, its status."""
    path = f"/apis/{API_VERSION}/namespaces/{ns}/workflowinstances/{name}"
    body = json.loads(kubectl(kubeconfig, "get", "--raw", path))
    managed = body["metadata"].get("managedFields") or []
    return {
        "object_bytes": len(json.dumps(body, separators=(",", ":"))),
        "managed_fields_bytes": len(json.dumps(managed, separators=(",", ":"))),
        "status_bytes": len(json.dumps(body.get("status") or {}, separators=(",", ":"))),
    }


MUTATING = ("POST", "PUT", "PATCH", "DELETE", "APPLY")


def apiserver_writes(kubeconfig: Path) -> dict[str, float]:
    """Every client's writes the API server has served, by `resource[/subresource] verb`
    (its apiserver_request_total): what the controllers write besides the operator."""
    out: dict[str, float] = {}
    text = kubectl(kubeconfig, "get", "--raw", "/metrics")
    for labels, value in samples(text, "apiserver_request_total"):
        if labels.get("verb") not in MUTATING:
            continue
        resource = labels.get("resource", "")
        if sub := labels.get("subresource"):
            resource = f"{resource}/{sub}"
        key = f"{resource} {labels['verb'].lower()}"
        out[key] = out.get(key, 0.0) + value
    return out


def per_instance(before: dict[str, float], after: dict[str, float], count: int) -> dict[str, float]:
    """The counts that grew between two readings, per instance."""
    grown = {k: (v - before.get(k, 0.0)) / count for k, v in sorted(after.items())}
    return {k: round(v, 3) for k, v in grown.items() if v > 0}
