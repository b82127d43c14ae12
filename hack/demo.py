"""`make demo`: start the local control plane, install tenantflow, show what is running.

Each later feature adds its part here; the demo always ends with a readable summary and
leaves the cluster running (`make down` stops it).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tenantflow.devcluster import DevCluster, versions
from tenantflow.observability.logging import configure

ROOT = Path(__file__).resolve().parent.parent


def step(msg: str) -> None:
    print(f"\n\033[1;34m==>\033[0m \033[1m{msg}\033[0m", flush=True)


def kubectl(kubeconfig: Path, *args: str) -> str:
    argv = [str(versions.bin_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def run_example() -> None:
    """Replay the example pipeline through WorkflowTestEnv and print its journal."""
    import yaml

    from tenantflow.testing import WorkflowTestEnv

    doc = yaml.safe_load((ROOT / "examples" / "workflows" / "ci-pipeline.yaml").read_text())
    result = WorkflowTestEnv().run_sync(
        doc["spec"]["source"]["inline"],
        params={"repo": "acme/web", "sha": "abc123"},
        events=[(600, "approved", {"by": "bob"})],
    )
    for s in result.steps:
        print(f"  {s['name']:<12} {s['kind']:<6} {s['state']:<9} attempts={s['attempts']}")
    print(
        f"  phase={result.phase} output={result.output} "
        f"(virtual time {result.elapsed}, {result.advances} replays)"
    )


def main() -> int:
    configure()
    step("Starting the local control plane (etcd, kube-apiserver, controllers, kwok)")
    kubeconfig = DevCluster().up()
    crds = sorted((ROOT / "crds").glob("*.yaml"))
    if crds:
        step("Installing the tenantflow CRDs")
        for crd in crds:
            print(kubectl(kubeconfig, "apply", "--server-side", "-f", str(crd)), end="")
        kubectl(kubeconfig, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        step("Applying the example tenants")
        print(kubectl(kubeconfig, "apply", "-f", str(ROOT / "examples" / "tenants")), end="")
    step("Running the ci-pipeline example on the engine (virtual clock, no cluster needed)")
    run_example()
    step("Cluster summary")
    print(kubectl(kubeconfig, "get", "nodes", "-o", "wide"), end="")
    print(kubectl(kubeconfig, "get", "storageclass"), end="")
    print(kubectl(kubeconfig, "get", "tenantflow", "-A"), end="")
    step("Done")
    print(f"export KUBECONFIG={kubeconfig}\nkubectl get tenantflow -A    # stop with: make down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
