"""Shared by the cluster benchmarks: the dev cluster, CRDs, an operator, kubectl."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tenantflow.devcluster import DevCluster, versions
from tenantflow.devcluster.operator import OperatorProcess

ROOT = Path(__file__).resolve().parent.parent


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [str(versions.bin_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@contextlib.contextmanager
def operator_on_dev_cluster() -> Iterator[tuple[Path, OperatorProcess]]:
    """Yield (kubeconfig, operator) on the dev cluster with the CRDs installed."""
    kubeconfig = DevCluster().up()
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    with tempfile.TemporaryDirectory() as tmp:
        op = OperatorProcess(kubeconfig, Path(tmp) / "operator.log")
        op.start()
        try:
            yield kubeconfig, op
        finally:
            op.stop()
