"""Noisy neighbour: tenant B's latency while tenant A floods, divided by B's latency alone."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from bench.cluster import apply, kubectl, operator_on_dev_cluster, tenant_with_definition
from bench.machine import write

FLOOD = 300
NAP = "async def run(event, step):\n    await step.sleep('nap', '1s')\n    return 1\n"


def _instances(ns: str, names: list[str]) -> list[dict]:  # type: ignore[type-arg]
    return [
        {
            "apiVersion": "tenantflow.dev/v1beta1",
            "kind": "WorkflowInstance",
            "metadata": {"name": n, "namespace": ns},
            "spec": {"workflowRef": {"name": "nap"}},
        }
        for n in names
    ]


def _latency(kubeconfig: Path, ns: str, name: str) -> float:
    start = time.perf_counter()
    apply(kubeconfig, *_instances(ns, [name]))
    kubectl(
        kubeconfig,
        "wait",
        "--for=jsonpath={.status.phase}=Complete",
        f"wfi/{name}",
        "-n",
        ns,
        "--timeout=300s",
    )
    return time.perf_counter() - start


def main() -> None:
    run = uuid.uuid4().hex[:5]
    with operator_on_dev_cluster() as (kubeconfig, _):
        noisy = tenant_with_definition(
            kubeconfig,
            f"noisy-{run}",
            "nap",
            NAP,
            maxConcurrentInstances=20,
            maxInstanceStartsPerSecond=100,
        )
        quiet = tenant_with_definition(kubeconfig, f"quiet-{run}", "nap", NAP)
        alone = _latency(kubeconfig, quiet, "alone")
        apply(kubeconfig, *_instances(noisy, [f"flood-{i}" for i in range(FLOOD)]))
        time.sleep(2)
        during = _latency(kubeconfig, quiet, "during")
        left = json.loads(kubectl(kubeconfig, "get", "wfi", "-n", noisy, "-o", "json"))["items"]
        backlog = sum((i.get("status") or {}).get("phase") != "Complete" for i in left)
        for name in (f"noisy-{run}", f"quiet-{run}"):
            kubectl(kubeconfig, "delete", "tenant", name, "--wait=false")
    write(
        "supervisor",
        {
            "floodInstances": FLOOD,
            "quietAloneSeconds": round(alone, 2),
            "quietDuringFloodSeconds": round(during, 2),
            "slowdown": round(during / alone, 2),
            "floodBacklogWhenQuietFinished": backlog,
        },
    )


if __name__ == "__main__":
    main()
