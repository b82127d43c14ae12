"""Time to Ready: 1 tenant, then 100 tenants created at once (local control plane); and
many tenants at once (issue 37.4, `python -m bench tenants-at-scale [N]`, default 1,000):
what each tenant costs the control plane, the operator and kube-router, and what a new
tenant's first step costs with them all present.

Uses the dev cluster (started if needed) and a fresh operator process; tenants are
deleted afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from bench.cluster import kubectl, operator_on_dev_cluster
from bench.footprint_bench import apiserver_heap_mib
from bench.machine import write
from bench.pod_bench import cold_start
from bench.scale_bench import _rss_mib, control_plane_rss_mib
from tenantflow.errors import DevClusterError
from tenantflow_dev.devcluster import DevCluster


def time_to_ready(
    kubeconfig: Path, count: int, spec: dict[str, Any] | None = None, *, keep: bool = False
) -> dict[str, float]:
    run = uuid.uuid4().hex[:5]
    names = [f"bench-{run}-{i}" for i in range(count)]
    docs = [
        {
            "apiVersion": "tenantflow.dev/v1beta1",
            "kind": "Tenant",
            "metadata": {"name": n, "labels": {"bench": run}},
            "spec": spec or {},
        }
        for n in names
    ]
    started = time.perf_counter()
    for i in range(0, count, 100):  # (one request per 100: a 1,000-document apply is slow)
        kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs[i : i + 100]))
    ready_at: dict[str, float] = {}
    while len(ready_at) < count and time.perf_counter() - started < 600 + count:
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
        time.sleep(0.2 if count <= 100 else 2)
    if not keep:
        kubectl(kubeconfig, "delete", "tenants", "-l", f"bench={run}", "--wait=false")
    times = sorted(ready_at.values())
    return {
        "run": run,
        "tenants": count,
        "ready": len(times),
        "firstReadySeconds": round(times[0], 2) if times else -1,
        "p50ReadySeconds": round(times[len(times) // 2], 2) if times else -1,
        "allReadySeconds": round(times[-1], 2) if len(times) == count else -1,
    }


def _count(argv: list[str]) -> int:
    """Lines of a command's output (iptables rules, ipset members)."""
    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    return len(out.splitlines())


def _router() -> dict[str, int]:
    """What kube-router programmed on the node: iptables rules (all tables) and the
    members of its ipsets (one per selected pod and namespace)."""
    return {
        "iptablesRules": _count(["iptables-save"]),
        "ipsetLines": _count(["ipset", "list"]),
    }


def _objects_in(kubeconfig: Path, namespace: str) -> int:
    kinds = (
        "resourcequotas,limitranges,serviceaccounts,services,secrets,persistentvolumeclaims,"
        "statefulsets,deployments,networkpolicies,roles,rolebindings,configmaps"
    )
    return len(kubectl(kubeconfig, "get", kinds, "-n", namespace, "-o", "name").split())


def _cold_or_late(kubeconfig: Path) -> float:
    """A new tenant's cold start; -1 when its first step took more than 180 s (recorded,
    not dropped: the figure is the finding)."""
    try:
        return cold_start(kubeconfig)
    except DevClusterError as late:
        print(f"cold start: {late}", file=sys.stderr)
        return -1.0


def at_scale(count: int) -> dict[str, Any]:
    """Issue 37.4: `count` idle tenants applied at once (their sandboxes at zero replicas:
    namespace, quota, policies, RBAC, volumes, no pod), then a new tenant's cold start
    with them all present (its pod's NetworkPolicy programmed among theirs)."""
    with operator_on_dev_cluster() as (kubeconfig, op):
        assert op.proc is not None
        before_cold = [_cold_or_late(kubeconfig) for _ in range(3)]
        # the API server's live heap after a GC: its RSS, after another benchmark restarted
        # it, moves by hundreds of MiB on its own (footprint_bench.py)
        heap0, cp0, op0 = (
            apiserver_heap_mib(kubeconfig),
            control_plane_rss_mib(),
            _rss_mib(op.proc.pid),
        )
        router0 = _router()
        ready = time_to_ready(kubeconfig, count, {"sandbox": {"replicas": 0}}, keep=True)
        time.sleep(30)  # the operator's and the control plane's memory settle
        heap1, cp1, op1 = (
            apiserver_heap_mib(kubeconfig),
            control_plane_rss_mib(),
            _rss_mib(op.proc.pid),
        )
        router1 = _router()
        one = f"tenant-bench-{ready['run']}-0"
        after_cold = [_cold_or_late(kubeconfig) for _ in range(3)]
        objects = _objects_in(kubeconfig, one) + 1  # + its namespace
        kubectl(kubeconfig, "delete", "tenants", "-l", f"bench={ready['run']}", "--wait=false")
        per = max(int(ready["ready"]), 1)

        def kib(grew_mib: float) -> float:
            return round(grew_mib * 1024 / per, 1)

        return {
            "timeToReady": ready,
            "objectsPerTenant": objects,
            "apiserverLiveHeapKiBPerTenant": kib(heap1 - heap0),
            "apiserverRssKiBPerTenant": kib(cp1["kube-apiserver"] - cp0["kube-apiserver"]),
            "etcdRssKiBPerTenant": kib(cp1["etcd"] - cp0["etcd"]),
            "operatorKiBPerTenant": kib(op1 - op0),
            "routerBefore": router0,
            "routerAfter": router1,
            "coldStartSecondsBefore": [round(c, 2) for c in before_cold],
            "coldStartSecondsWithThem": [round(c, 2) for c in after_cold],
            "idleSandboxPods": 0,  # replicas 0: an idle tenant's sandbox costs no memory
        }


def main() -> None:
    with operator_on_dev_cluster() as (kubeconfig, _):
        write(
            "tenants",
            {"one": time_to_ready(kubeconfig, 1), "hundred": time_to_ready(kubeconfig, 100)},
        )


def main_at_scale() -> None:
    if not DevCluster().up() or not DevCluster().has_node():
        raise SystemExit("tenants-at-scale needs the dev cluster's real node")
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    write("tenants-at-scale", at_scale(count))


if __name__ == "__main__":
    main()
