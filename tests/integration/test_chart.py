"""The Helm chart: lints, renders to objects the API server accepts, installs, upgrades and
uninstalls on the local control plane (pods run on kwok nodes; nothing executes there)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, wait_for
from tenantflow.devcluster import versions

CHART = ROOT / "charts" / "tenantflow"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def helm(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(versions.bin_dir() / "helm"), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert not check or result.returncode == 0, result.stderr
    return result


def test_helm_lint(kubeconfig: Path) -> None:
    assert "0 chart(s) failed" in helm(kubeconfig, "lint", str(CHART)).stdout


def test_rbac_has_no_wildcards(kubeconfig: Path) -> None:
    docs = list(yaml.safe_load_all(helm(kubeconfig, "template", "t", str(CHART)).stdout))
    role = next(d for d in docs if d and d["kind"] == "ClusterRole")
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule


def test_rendered_chart_is_accepted_by_the_api_server(
    kubeconfig: Path, crds: Path, kubectl: Kubectl, namespace: str
) -> None:
    rendered = helm(kubeconfig, "template", "t", str(CHART), "-n", namespace).stdout
    result = kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=rendered, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "deployment.apps/t-operator created (server dry run)" in result.stdout


@pytest.mark.slow
def test_install_upgrade_uninstall(kubeconfig: Path, crds: Path, kubectl: Kubectl) -> None:
    ns, release = f"tf-chart-{uuid.uuid4().hex[:6]}", "tf"

    def deployment(jsonpath: str) -> str:
        return kubectl(
            "get", "deployment", "tf-operator", "-n", ns, "-o", f"jsonpath={{{jsonpath}}}"
        ).stdout

    helm(
        kubeconfig,
        "install",
        release,
        str(CHART),
        "-n",
        ns,
        "--create-namespace",
        "--wait",
        "--timeout",
        "120s",
        "--set",
        "replicas=2",
    )
    try:
        assert deployment(".status.readyReplicas") == "2"
        assert kubectl("get", "clusterkopfpeering", "tenantflow").returncode == 0
        helm(
            kubeconfig,
            "upgrade",
            release,
            str(CHART),
            "-n",
            ns,
            "--wait",
            "--timeout",
            "120s",
            "--set",
            "replicas=1",
            "--set",
            "logLevel=DEBUG",
        )
        assert '"value":"DEBUG"' in deployment(".spec.template.spec.containers[0].env")
        wait_for(lambda: deployment(".status.replicas") == "1", "scaled to 1", 60)
        assert "tf" in helm(kubeconfig, "list", "-n", ns).stdout
    finally:
        helm(kubeconfig, "uninstall", release, "-n", ns, "--wait", "--timeout", "120s")
    assert kubectl("get", "deployment", "tf-operator", "-n", ns, check=False).returncode != 0
    assert kubectl("get", "clusterrole", "tf-operator", check=False).returncode != 0
    assert kubectl("get", "crd", "tenants.tenantflow.dev").returncode == 0, "CRDs are kept"
    kubectl("delete", "namespace", ns, "--wait=false")
