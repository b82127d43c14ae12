"""Find the control-plane binaries, building them from Go modules the first time."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tenantflow.errors import DevClusterError
from tenantflow.paths import cache_dir
from tenantflow_dev.devcluster import versions

BUILD_SCRIPT = Path(__file__).with_name("build-binaries.sh")


def missing(bin_dir: Path | None = None) -> list[str]:
    """Artifacts not yet built for the pinned versions."""
    d = bin_dir or versions.bin_dir()
    return [t for t in versions.ARTIFACTS if not (d / t).is_file()]


def ensure_binaries() -> Path:
    """Return the binary directory, building what is missing (minutes, once per version)."""
    d = versions.bin_dir()
    if not missing(d):
        return d
    env = dict(
        os.environ,
        K8S_VERSION=versions.KUBERNETES,
        ETCD_VERSION=versions.ETCD,
        KWOK_VERSION=versions.KWOK,
        HELM_VERSION=versions.HELM,
        KUBE_ROUTER_VERSION=versions.KUBE_ROUTER,
        CLI_UTILS_VERSION=versions.CLI_UTILS,
        KSTATUS_SOURCE=str(Path(__file__).with_name("kstatus") / "main.go"),
        TENANTFLOW_BIN=str(d),
        TENANTFLOW_SRC=str(cache_dir() / "src"),
    )
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], env=env, check=False)
    if result.returncode != 0:
        raise DevClusterError(
            f"building the control plane failed (exit {result.returncode}); the reason is printed "
            f"above. Script: {BUILD_SCRIPT}"
        )
    if still := missing(d):
        raise DevClusterError(f"the build finished but {', '.join(still)} is missing from {d}")
    return d
