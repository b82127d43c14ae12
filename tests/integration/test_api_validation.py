"""The CRDs on a real API server: examples apply, bad manifests fail with useful messages."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
INVALID = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))
KUSTOMIZE_FILES = {"kustomization.yaml", "kustomizeconfig.yaml"}  # kustomize's, not objects
EXAMPLES = sorted(p for p in (ROOT / "examples").rglob("*.yaml") if p.name not in KUSTOMIZE_FILES)
KUSTOMIZATIONS = sorted(p.parent for p in (ROOT / "examples").rglob("kustomization.yaml"))


def expectation(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: ...'"
    return first.removeprefix("# expect: ")


def test_there_are_at_least_25_invalid_manifests() -> None:
    assert len(INVALID) >= 25


@pytest.fixture
def cleanup(kubectl: Kubectl) -> Iterator[list[str]]:
    """Cluster-scoped objects a test created (Tenants), deleted afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        kubectl("delete", "tenant", name, "--ignore-not-found", "--wait=false", check=False)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_manifest_is_rejected_with_a_clear_message(
    path: Path, crds: Path, kubectl: Kubectl, namespace: str, cleanup: list[str]
) -> None:
    docs = list(yaml.safe_load_all(path.read_text()))
    *setup, bad = docs
    for doc in setup:  # earlier documents are valid; the last one updates or creates badly
        kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))
        if doc["kind"] == "Tenant":
            cleanup.append(doc["metadata"]["name"])
    result = kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(bad), check=False)
    if result.returncode == 0 and bad["kind"] == "Tenant":
        cleanup.append(bad["metadata"]["name"])
    assert result.returncode != 0, f"{path.name} was accepted:\n{result.stdout}"
    assert expectation(path) in result.stderr, result.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT / "examples")))
def test_example_applies(path: Path, crds: Path, kubectl: Kubectl, namespace: str) -> None:
    """Server-side dry run; namespaced examples are pointed at a scratch namespace."""
    dry_run_in(namespace, path.read_text(), kubectl)


@pytest.mark.parametrize(
    "directory", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(ROOT / "examples"))
)
def test_example_kustomization_renders_and_applies(
    directory: Path, crds: Path, kubectl: Kubectl, namespace: str
) -> None:
    """What `kubectl apply -k` would send, server-side dry run in a scratch namespace."""
    dry_run_in(namespace, kubectl("kustomize", str(directory)).stdout, kubectl)


def dry_run_in(namespace: str, manifests: str, kubectl: Kubectl) -> None:
    """Server-side dry run of `manifests`, the namespaced ones pointed at `namespace`."""
    docs = [d for d in yaml.safe_load_all(manifests) if d]
    assert docs, "nothing to apply"
    for doc in docs:
        if "namespace" in doc["metadata"]:
            doc["metadata"]["namespace"] = namespace
    result = kubectl(
        "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs), check=False
    )
    assert result.returncode == 0, result.stderr


def _instance(name: str, workflow: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tenantflow.dev/v1alpha1",
        "kind": "WorkflowInstance",
        "metadata": {"name": name},
        "spec": {"workflowRef": {"name": workflow}, **spec},
    }


def test_kubectl_ergonomics(crds: Path, kubectl: Kubectl, namespace: str) -> None:
    wfi = _instance("cols", "ci-pipeline")
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(wfi))
    header = kubectl("get", "wfi", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "WORKFLOW", "REVISION", "PHASE", "STEPS", "AGE"]
    assert "cols" in kubectl("get", "tenantflow", "-n", namespace).stdout
    explained = kubectl("explain", "workflowinstance.spec.events").stdout
    assert "Append-only inbox" in explained
    applied = kubectl("get", "wfinst", "cols", "-n", namespace, "-o", "yaml").stdout
    spec = yaml.safe_load(applied)["spec"]
    assert spec["suspend"] is False and spec["terminate"] is False, "defaults are applied"


def test_a_status_write_is_tracked_as_one_field(
    crds: Path, kubectl: Kubectl, namespace: str
) -> None:
    """The status is atomic to server-side field tracking: its writer's managedFields entry
    is `f:status`, not one entry per key of the journal, whatever the status holds."""
    wfi = _instance("tracked", "x")
    kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump(wfi))
    steps = [{"name": f"s{i}", "kind": "do", "state": "Complete", "attempts": 1} for i in range(3)]
    status = {"phase": "Complete", "revision": 1, "steps": steps, "stepCount": 3}
    kubectl(
        "patch", "wfi", "tracked", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    shown = kubectl("get", "wfi", "tracked", "-n", namespace, "-o", "yaml", "--show-managed-fields")
    got = yaml.safe_load(shown.stdout)
    assert got["status"]["steps"][2]["name"] == "s2", got["status"]
    tracked = [m for m in got["metadata"]["managedFields"] if m.get("subresource") == "status"]
    assert [m["fieldsV1"] for m in tracked] == [{"f:status": {}}], tracked


def test_events_can_be_appended(crds: Path, kubectl: Kubectl, namespace: str) -> None:
    base = _instance("inbox", "x", events=[{"type": "a"}])
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(base))
    base["spec"]["events"].append({"type": "b", "payload": {"n": 1}})
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(base))
