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
    step("Cluster summary")
    print(kubectl(kubeconfig, "get", "nodes", "-o", "wide"), end="")
    print(kubectl(kubeconfig, "get", "storageclass"), end="")
    step("Done")
    print(f"export KUBECONFIG={kubeconfig}\nkubectl get tenantflow -A    # stop with: make down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
