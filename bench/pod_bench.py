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
from bench.wake_phases import PHASES, WakeClock
from tenantflow.controllers.sandboxes import Sandboxes
from tenantflow.errors import DevClusterError
from tenantflow.kube.client import Kube
from tenantflow.sandbox.client.transport import HttpTransport
from tenantflow.vocabulary import API_VERSION
from tenantflow_dev.devcluster import DevCluster

COLD_RUNS = 3
PACED_GAP = 0.05  # seconds between paced warm calls: well past a spare's preparation


def _status(kubeconfig: Path, ns: str, name: str) -> dict[str, Any]:
    out = kubectl(kubeconfig, "get", "wfi", name, "-n", ns, "-o", "yaml")
    return dict((yaml.safe_load(out) or {}).get("status") or {})


def _instance(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowInstance",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"workflowRef": {"name": "noop"}},
    }


def _first_step_done(kubeconfig: Path, ns: str, name: str, t0: float) -> float:
    """Seconds from `t0` until the instance's first step is Complete."""
    while True:
        steps = _status(kubeconfig, ns, name).get("steps") or []
        if steps and steps[0].get("state") == "Complete":
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > 180:
            raise DevClusterError(f"{ns}/{name}: the first step did not complete in 180 s")
        time.sleep(0.05)


def cold_start(kubeconfig: Path, phases: list[dict[str, float]] | None = None) -> float:
    """Seconds from `kubectl apply` of a new Tenant (with its definition and an instance
    applied as soon as its namespace exists) to the instance's first step Complete; its
    phases (bench/wake_phases.py) appended to `phases` when given."""
    tenant = f"cold-{uuid.uuid4().hex[:6]}"
    ns = f"tenant-{tenant}"
    with WakeClock(kubeconfig, ns, "first").watching() as clock:
        clock.started()
        seconds = _cold_start(kubeconfig, tenant, ns)
        clock.wait_done()
    if phases is not None:
        phases.append(clock.phases())
    kubectl(kubeconfig, "delete", "tenant", tenant, "--wait=false")
    return seconds


def _cold_start(kubeconfig: Path, tenant: str, ns: str) -> float:
    t0 = time.perf_counter()
    apply(kubeconfig, tenant_doc(tenant))
    docs = [
        {
            "apiVersion": API_VERSION,
            "kind": "WorkflowDefinition",
            "metadata": {"name": "noop", "namespace": ns},
            "spec": {"source": {"inline": NOOP}},
        },
        _instance(ns, "first"),
    ]
    while True:
        try:
            apply(kubeconfig, *docs)
            break
        except Exception:  # the namespace is not there yet
            time.sleep(0.05)
    return _first_step_done(kubeconfig, ns, "first", t0)


def wake_from_zero(
    kubeconfig: Path, runs: int = COLD_RUNS
) -> tuple[list[float], list[dict[str, float]]]:
    """Issue 37.3: seconds from an instance's creation to its first step Complete when its
    tenant's sandbox is scaled to zero (image present, PVC bound): the operator scales the
    StatefulSet up, the pod starts, the runner and zygote import and pass the isolation
    canary, the readiness probe and the EndpointSlice say so, the operator drives it; and
    each run's phases (bench/wake_phases.py), seconds after the instance's creation."""
    tenant = f"wake-{uuid.uuid4().hex[:6]}"
    ns = f"tenant-{tenant}"
    doc = tenant_doc(tenant)
    doc["spec"]["sandbox"] = {"idleAfter": "5s"}
    out: list[float] = []
    phases: list[dict[str, float]] = []
    try:
        apply(kubeconfig, doc)
        wait_tenant_ready(kubeconfig, tenant)
        apply(
            kubeconfig,
            {
                "apiVersion": API_VERSION,
                "kind": "WorkflowDefinition",
                "metadata": {"name": "noop", "namespace": ns},
                "spec": {"source": {"inline": NOOP}},
            },
        )
        for run in range(runs + 1):  # the first run only makes the sandbox once
            _scaled_to_zero(kubeconfig, ns)
            with WakeClock(kubeconfig, ns, f"wake-{run}").watching() as clock:
                clock.started()
                t0 = time.perf_counter()
                apply(kubeconfig, _instance(ns, f"wake-{run}"))
                seconds = _first_step_done(kubeconfig, ns, f"wake-{run}", t0)
                clock.wait_done()
            if run:
                out.append(seconds)
                phases.append(clock.phases())
    finally:
        kubectl(kubeconfig, "delete", "tenant", tenant, "--wait=false")
    return out, phases


def median_phases(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each phase's median over the runs that saw it, in the order a wake passes them."""
    return {
        phase: round(statistics.median(seen), 3)
        for phase in PHASES
        if (seen := [r[phase] for r in runs if phase in r])
    }


def _scaled_to_zero(kubeconfig: Path, ns: str, timeout: float = 180) -> None:
    """Until the tenant's sandbox StatefulSet is at zero and its pod is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replicas = kubectl(
            kubeconfig, "get", "statefulset", "sandbox", "-n", ns, "-o", "jsonpath={.spec.replicas}"
        )
        pods = kubectl(
            kubeconfig,
            "get",
            "pods",
            "-n",
            ns,
            "-l",
            "app.kubernetes.io/name=sandbox",
            "-o",
            "name",
        )
        if replicas.strip() == "0" and not pods.strip():
            return
        time.sleep(0.5)
    raise DevClusterError(f"{ns}: the sandbox was not scaled to zero in {timeout} s")


async def warm_dispatch(kubeconfig: Path, tenant: str, calls: int = 300) -> dict[str, float]:
    """Back to back (the goal's figure, as measured since the first run) and paced
    (`PACED_GAP` between calls: a sandbox that is warm and idle when the call comes, its
    spare prepared, its pod's CPU quota not spent by the call before)."""
    kube = await Kube.connect(str(kubeconfig))
    transport = HttpTransport()
    try:
        ep = await Sandboxes(kube, mode="cluster").endpoint(tenant)
        await warm_calls(transport, ep, 10)  # connections and the zygote's caches warm
        back_to_back = await warm_calls(transport, ep, calls)
        paced = await warm_calls(transport, ep, calls, gap=PACED_GAP)
        return {
            **back_to_back,
            "warmPacedP50Ms": paced["warmP50Ms"],
            "warmPacedP99Ms": paced["warmP99Ms"],
            "pacedGapMs": PACED_GAP * 1000,
        }
    finally:
        await transport.close()
        await kube.close()


def main() -> None:
    if not DevCluster().up() or not DevCluster().has_node():
        raise DevClusterError("the pod benchmark needs the dev cluster's real node")
    with operator_on_dev_cluster() as (kubeconfig, _):
        cold_phases: list[dict[str, float]] = []
        colds = [cold_start(kubeconfig, cold_phases) for _ in range(COLD_RUNS)]
        wakes, phases = wake_from_zero(kubeconfig)
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
            "coldStartPhases": median_phases(cold_phases),
            "wakeFromZeroSeconds": round(statistics.median(wakes), 2),
            "wakeFromZeroRuns": [round(w, 2) for w in wakes],
            # seconds after the instance's creation at which each phase was first seen
            "wakeFromZeroPhases": median_phases(phases),
            "wakeFromZeroPhaseRuns": phases,
            **warm,
            "what": "cold: Tenant applied -> first step Complete in a new sandbox pod; "
            "wake: instance created -> first step Complete, its sandbox scaled to zero; "
            "warm: one no-op advance through the cluster transport, back to back "
            "(warmP50Ms) and pacedGapMs apart (warmPacedP50Ms)",
        },
    )


if __name__ == "__main__":
    main()
