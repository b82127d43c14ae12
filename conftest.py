"""Shared pytest fixtures: a real API server for integration and e2e tests.

The cluster comes from TENANTFLOW_KUBECONFIG or KUBECONFIG when given; otherwise the
local dev control plane is started (and stopped again at the end if this session started it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tenantflow.kube.resources import RESOURCES
from tenantflow.vocabulary import (
    API_VERSION,
    DEFINITION,
    GROUP,
    INSTANCE,
    SCHEDULE,
    SERVED_VERSIONS,
    TENANT,
)
from tenantflow_dev.devcluster.operator_process import OperatorProcess

_MARK_BY_DIR = {"unit": "unit", "integration": "integration", "e2e": "e2e"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by their directory, so `-m unit` works without per-file boilerplate."""
    for item in items:
        for part in Path(item.fspath).parts:
            if part in _MARK_BY_DIR:
                item.add_marker(_MARK_BY_DIR[part])


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[Path]:
    given = os.environ.get("TENANTFLOW_KUBECONFIG") or os.environ.get("KUBECONFIG")
    if given:
        yield Path(given)
        return
    from tenantflow_dev.devcluster import DevCluster
    from tenantflow_dev.devcluster.set_aside import operators_set_aside

    cluster = DevCluster()
    started_here = not cluster.healthy()
    path = cluster.up()
    # a cluster `make demo` left running: its installed operator must not take the
    # tests' tenants (it would join their lease group); it is back after the session
    with operators_set_aside(_kubectl_at(path), print):
        yield path
    if started_here and not os.environ.get("TENANTFLOW_KEEP_CLUSTER"):
        cluster.down()


def _kubectl_bin() -> str:
    from tenantflow_dev.devcluster import versions

    built = versions.bin_dir() / "kubectl"
    found = str(built) if built.exists() else shutil.which("kubectl")
    assert found, "kubectl not found: run `make binaries` or put kubectl on PATH"
    return found


@pytest.fixture(scope="session")
def kubectl_bin() -> str:
    return _kubectl_bin()


@pytest.fixture(scope="session")
def kubectl(kubeconfig: Path, kubectl_bin: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run kubectl against the test cluster; `check=False` to inspect failures."""
    return _kubectl_at(kubeconfig, kubectl_bin)


def _kubectl_at(
    kubeconfig: Path, kubectl_bin: str | None = None
) -> Callable[..., subprocess.CompletedProcess[str]]:
    binary = kubectl_bin or _kubectl_bin()

    def run(
        *args: str,
        input: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [binary, f"--kubeconfig={kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[object]:
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(kubeconfig))
    yield client
    client.close()


@pytest.fixture
def namespace(api_client: object) -> Iterator[str]:
    """A fresh namespace with its default ServiceAccount ready; deleted afterwards."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    name = f"tf-test-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(lambda: core.list_namespaced_service_account(name).items, f"SA in {name}")
    yield name
    core.delete_namespace(name)


def privileged_pod(name: str) -> object:
    """A pod that the restricted Pod Security profile must reject."""
    from kubernetes import client

    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="c",
                    image="registry.k8s.io/pause:3.10",
                    security_context=client.V1SecurityContext(privileged=True),
                )
            ]
        ),
    )


def wait_for(check: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    """Poll `check` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.25)


def wait_deleted(read: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll `read` (a kubernetes client read) until it answers 404."""
    from kubernetes.client.rest import ApiException

    def gone() -> bool:
        try:
            read()
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, what, timeout)


ROOT = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def crds(kubectl: Callable[..., subprocess.CompletedProcess[str]]) -> Path:
    """The tenantflow CRDs, installed (server-side apply) and Established."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl(
        "wait",
        "--for=condition=Established",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=tenantflow",
        "--timeout=60s",
    )
    # Established is not yet served: right after a CRD is made or changed, the API server
    # can still answer 503 "Resource kind ... not found" for its kind for a moment, in
    # each served version on its own (a create in v1alpha1 failed after a v1beta1 list
    # had answered)
    kinds = ",".join(
        f"{RESOURCES[(API_VERSION, kind)][0]}.{version}.{GROUP}"
        for kind in KINDS
        for version in SERVED_VERSIONS
    )
    wait_for(
        lambda: kubectl("get", kinds, "-A", "--request-timeout=5s", check=False).returncode == 0,
        "the tenantflow kinds served",
        60,
    )
    # and a list answering is not a create being taken: the create path answered 503
    # "Resource kind ... not found" after the lists had (seen 2026-12-07): a server-side
    # dry-run create of each kind in each version must reach validation (any answer but 503)
    wait_for(lambda: all(_creatable(kubectl, k, v) for k in KINDS for v in SERVED_VERSIONS),
             "creates of the tenantflow kinds taken", 60)  # fmt: skip
    return ROOT / "crds"


KINDS = (TENANT, DEFINITION, INSTANCE, SCHEDULE)


def _creatable(
    kubectl: Callable[..., subprocess.CompletedProcess[str]], kind: str, version: str
) -> bool:
    """Whether the API server takes a create of `kind` in `version` (dry run: nothing is
    stored; an invalid object is refused by validation, which means it is served)."""
    _, namespaced = RESOURCES[(API_VERSION, kind)]
    meta = {"name": "served-check", **({"namespace": "default"} if namespaced else {})}
    body = json.dumps({"apiVersion": f"{GROUP}/{version}", "kind": kind, "metadata": meta})
    done = kubectl("create", "--dry-run=server", "-f", "-", input=body, check=False)
    return (
        "ServiceUnavailable" not in done.stderr
        and "not found. There can be a delay" not in done.stderr
    )


@pytest.fixture(scope="session")
def operator_process(
    kubeconfig: Path, crds: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    op.start()
    yield op
    op.stop()
