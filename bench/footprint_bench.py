"""Footprint: what one waiting WorkflowInstance costs the control plane, by status shape.

Issue 34 asks for <= 16 KiB of kube-apiserver + etcd memory per waiting instance (the
scale benchmark measured ~64 KiB). This benchmark says where those bytes come from: for
each status shape it restarts kube-apiserver (a clean heap), creates N instances in a
namespace no operator drives, writes that status through the status subresource (as
the operator does: a merge patch), and records the RSS slope of kube-apiserver and
etcd and the stored object's bytes (with managedFields).

BENCH_FOOTPRINT_N=5000 python -m bench footprint   (default 3,000)
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from bench.cluster import dev_cluster_with_crds, kubectl, stored_bytes
from bench.machine import write
from bench.scale_bench import control_plane_rss_mib
from tenantflow.kube.client import Kube
from tenantflow.vocabulary import API_VERSION, INSTANCE
from tenantflow_dev.devcluster import DevCluster

T = "2026-12-06T04:26:54.409177Z"
STEP = {"kind": "do", "state": "Complete", "attempts": 1, "startedAt": T, "finishedAt": T}


def _condition(ctype: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-12-06T04:26:54Z",
        "observedGeneration": 1,
    }


# a three-step instance asleep in its third step, as the operator wrote it before issue 34
BEFORE: dict[str, Any] = {
    "revision": 1,
    "startedAt": T,
    "phase": "Waiting",
    "steps": [
        {"name": "a", **STEP, "output": "x"},
        {"name": "b", **STEP, "output": "y"},
        {
            "name": "nap",
            "kind": "sleep",
            "state": "Waiting",
            "attempts": 0,
            "startedAt": T,
            "until": T,
        },
    ],
    "stepCount": 3,
    "eventsSeen": [],
    "waitingFor": {"kind": "sleep", "step": "nap", "until": T, "eventType": None, "child": None},
    "nextWakeAt": T,
    "observedGeneration": 1,
    "conditions": [
        _condition("SandboxReachable", "True", "Reachable"),
        _condition("Admitted", "True", "Started", "admitted within the tenant's limits"),
        _condition("Ready", "False", "Waiting", "the instance is Waiting"),
        _condition("Reconciling", "True", "Waiting", "the instance is Waiting"),
        _condition("Stalled", "False", "NotStalled"),
    ],
}


def _shapes() -> dict[str, dict[str, Any]]:
    """The shapes compared: before, now (only the conditions that say something: Ready,
    and Reconciling while under way), then with one more part taken out at a time."""
    now = {**copy.deepcopy(BEFORE), "conditions": BEFORE["conditions"][2:4]}
    no_journal = {k: v for k, v in copy.deepcopy(now).items() if k not in ("steps", "eventsSeen")}
    return {
        "before": copy.deepcopy(BEFORE),
        "now": now,
        "now-without-journal": no_journal,
        "phase-only": {"phase": "Waiting"},
        "none": {},
    }


async def _populate(kubeconfig: Path, ns: str, status: dict[str, Any], count: int) -> None:
    kube = await Kube.connect(str(kubeconfig), connections=32, proxy_from_env=False)
    gate = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        name = f"f-{i:06}"
        async with gate:
            await kube.create(
                {
                    "apiVersion": API_VERSION,
                    "kind": INSTANCE,
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"workflowRef": {"name": "sleeper"}},
                }
            )
            if status:
                await kube.patch(
                    API_VERSION, INSTANCE, name, ns, {"status": status}, subresource="status"
                )

    try:
        await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await kube.close()


def apiserver_heap_mib(kubeconfig: Path) -> float:
    """kube-apiserver's live Go heap right after a garbage collection (`gc=1`): what it
    keeps, without the garbage and the GC's headroom an RSS also counts (GOGC=100 lets the
    heap reach twice what is live before it collects)."""
    text = kubectl(kubeconfig, "get", "--raw", "/debug/pprof/heap?gc=1&debug=1")
    found = re.search(r"^# HeapAlloc = (\d+)$", text, re.MULTILINE)
    if found is None:
        raise RuntimeError("kube-apiserver's heap profile has no HeapAlloc (profiling off?)")
    return int(found.group(1)) / 2**20


def measure(kubeconfig: Path, shape: str, status: dict[str, Any], count: int) -> dict[str, Any]:
    DevCluster().restart("kube-apiserver")  # a clean heap for each shape
    time.sleep(5)
    ns = f"footprint-{uuid.uuid4().hex[:5]}"
    kubectl(kubeconfig, "create", "namespace", ns)
    before, heap_before = control_plane_rss_mib(), apiserver_heap_mib(kubeconfig)
    asyncio.run(_populate(kubeconfig, ns, status, count))
    time.sleep(10)  # the watch cache settles
    after, heap_after = control_plane_rss_mib(), apiserver_heap_mib(kubeconfig)
    out: dict[str, Any] = {
        "shape": shape,
        "instances": count,
        **stored_bytes(kubeconfig, ns, "f-000000"),
    }
    for component in ("kube-apiserver", "etcd"):
        grew = after.get(component, 0.0) - before.get(component, 0.0)
        out[f"{component}_kib_per_instance"] = round(grew * 1024 / count, 1)
    out["control_plane_kib_per_instance"] = round(
        out["kube-apiserver_kib_per_instance"] + out["etcd_kib_per_instance"], 1
    )
    # what the API server keeps per instance (its watch cache, the object's versions)
    out["apiserver_live_heap_kib_per_instance"] = round(
        (heap_after - heap_before) * 1024 / count, 1
    )
    # gone before the next shape is measured: its deletion (thousands of watch events, the
    # namespace controller's garbage) would otherwise land in that shape's figures
    kubectl(kubeconfig, "delete", "namespace", ns, "--timeout=600s")
    return out


def main() -> None:
    count = int(os.environ.get("BENCH_FOOTPRINT_N", "3000"))
    kubeconfig = dev_cluster_with_crds()
    rows = [measure(kubeconfig, shape, status, count) for shape, status in _shapes().items()]
    for row in rows:
        print(json.dumps(row))
    write("footprint", {"instances": count, "shapes": rows})


if __name__ == "__main__":
    main()
