"""e2e fixtures: a provisioned tenant (per module) with helpers to run workflows in it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import OperatorProcess, wait_for
from tenantflow.tenancy.manifests import SECRETS_DIR
from tenantflow.vocabulary import GROUP, VERSION, namespace_of

SYSTEM_PYTHON = "/usr/bin/python3"  # the stdlib's sqlite3 is all the reader needs


class Tenant:
    """One provisioned tenant and helpers to run workflows in it."""

    def __init__(self, api_client: client.ApiClient, name: str) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.name, self.ns = name, f"tenant-{name}"

    def define(
        self, name: str, source: str, language: str = "python", **spec: Any
    ) -> dict[str, Any]:
        inline = {"inline": textwrap.dedent(source), "language": language}
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkflowDefinition",
            "metadata": {"name": name},
            "spec": {"source": inline, **spec},
        }
        try:
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.ns, "workflowdefinitions", body
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.ns, "workflowdefinitions", name, {"spec": body["spec"]}
            )
        return self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.ns, "workflowdefinitions", name
        )

    def define_all(self, **sources: str) -> Tenant:
        """Definitions by name, each waited for until its first revision is active."""
        for name, source in sources.items():
            self.define(name, source)
        for name in sources:
            self.wait_revision(name, 1)
        return self

    def wait_revision(self, definition: str, revision: int) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            d = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.ns, "workflowdefinitions", definition
            )
            st = d.get("status") or {}
            return d if st.get("activeRevision") == revision else None

        return wait_for(ready, f"{definition} active revision {revision}", 30)  # type: ignore[return-value]

    def start(self, definition: str, params: Any = None, **spec: Any) -> str:
        name = f"{definition}-{uuid.uuid4().hex[:6]}"
        self.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            self.ns,
            "workflowinstances",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "WorkflowInstance",
                "metadata": {"name": name},
                "spec": {"workflowRef": {"name": definition}, "params": params, **spec},
            },
        )
        return name

    def get(self, instance: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.ns, "workflowinstances", instance
        )

    def status(self, instance: str) -> dict[str, Any]:
        return self.get(instance).get("status") or {}

    def wait_phase(self, instance: str, *phases: str, timeout: float = 60) -> dict[str, Any]:
        return wait_for(
            lambda: (s := self.status(instance)).get("phase") in phases and s,  # type: ignore[return-value]
            f"{instance} in {phases}",
            timeout,
        )

    def send_event(self, instance: str, type_: str, payload: Any = None) -> None:
        events = self.get(instance)["spec"].get("events") or []
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.ns,
            "workflowinstances",
            instance,
            {"spec": {"events": [*events, {"type": type_, "payload": payload}]}},
        )

    def data_dir(self) -> Path:
        pvc = self.core.read_namespaced_persistent_volume_claim("tenant-data", self.ns)
        pv = self.core.read_persistent_volume(pvc.spec.volume_name)
        return Path(pv.spec.host_path.path)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the tenant's database as its owner: a connection as root would leave
        root-owned -wal/-shm files behind (or a root-owned database, before the sandbox
        made one), which the sandbox (another uid) cannot write."""
        path = self.data_dir() / "tenant.sqlite3"
        if not path.exists():  # never create it: as root, it would be the sandbox's no more
            raise sqlite3.OperationalError(f"{path} does not exist yet")
        owner = path.stat()
        script = (
            "import json, sqlite3, sys\n"
            "with sqlite3.connect(sys.argv[1]) as db:\n"
            "    print(json.dumps(db.execute(sys.argv[2]).fetchall()))\n"
        )

        def become_owner() -> None:
            os.setgroups([])
            os.setgid(owner.st_gid)
            os.setuid(owner.st_uid)

        done = subprocess.run(
            [SYSTEM_PYTHON, "-c", script, str(path), sql],  # one the owner may execute
            capture_output=True,
            text=True,
            preexec_fn=become_owner if os.geteuid() == 0 else None,
            check=False,
        )
        if done.returncode != 0:
            raise sqlite3.OperationalError(done.stderr.strip().splitlines()[-1])
        return [tuple(row) for row in json.loads(done.stdout)]


def cli(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the `tenantflow` CLI as a user would, against the test cluster."""
    result = subprocess.run(
        [sys.executable, "-m", "tenantflow", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not check or result.returncode == 0, result.stderr
    return result


def sandbox_pod(tenant: Tenant) -> client.V1Pod:
    """The tenant's ready sandbox pod (waiting for one)."""

    def ready() -> client.V1Pod | None:
        pods = tenant.core.list_namespaced_pod(
            tenant.ns,
            label_selector="app.kubernetes.io/name=sandbox",  # not the egress proxy
        ).items
        for pod in pods:
            statuses = pod.status.container_statuses or []
            if (
                pod.metadata.deletion_timestamp is None
                and statuses
                and all(s.ready for s in statuses)
            ):
                return pod
        return None

    return wait_for(ready, f"a ready sandbox pod in {tenant.ns}", 120)  # type: ignore[return-value]


def restart_sandbox(tenant: Tenant, pod: client.V1Pod | None = None) -> client.V1Pod:
    """Delete the sandbox pod and wait for the StatefulSet's replacement."""
    old = pod or sandbox_pod(tenant)
    tenant.core.delete_namespaced_pod(old.metadata.name, tenant.ns, grace_period_seconds=0)
    wait_for(lambda: sandbox_pod(tenant).metadata.uid != old.metadata.uid, "a new pod", 120)
    return sandbox_pod(tenant)


def mount_secret(tenant: Tenant, kubectl: Callable[..., Any], name: str) -> None:
    """After the platform created Secret `name`: restart the sandbox and wait until its
    worker sees the Secret's files (the kubelet fills an optional Secret volume that was
    empty only at its next sync, so a running pod would see it within a minute or two)."""
    restart_sandbox(tenant)
    look = f"import os; print(sorted(os.listdir('{SECRETS_DIR}/{name}')))"

    def mounted() -> bool:
        done = kubectl(
            "-n",
            tenant.ns,
            "exec",
            "sandbox-0",
            "-c",
            "worker",
            "--",
            "python3",
            "-c",
            look,
            check=False,
        )
        return done.returncode == 0 and done.stdout.strip() not in ("", "[]")

    wait_for(mounted, f"Secret {name} mounted in {tenant.ns}'s sandbox", 180)


# a sandbox pod on the one 2-core node can wait behind the teardown of the last module's
# tenants (their pods, namespaces and CNI) for a minute or more before it starts
TENANT_READY_TIMEOUT = 180.0


def why_not_ready(api_client: client.ApiClient, name: str) -> str:
    """What a Tenant that did not get Ready says, and its pods' states: the failure names
    the part that was late (an image, a volume, a probe) instead of only the timeout."""
    custom = client.CustomObjectsApi(api_client)
    status = custom.get_cluster_custom_object(GROUP, VERSION, "tenants", name).get("status") or {}
    lines = [f"Tenant {name}: phase {status.get('phase')}"]
    lines += [
        f"  condition {c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message')}"
        for c in status.get("conditions") or []
    ]
    pods = client.CoreV1Api(api_client).list_namespaced_pod(namespace_of(name)).items
    for pod in pods:
        waiting = [
            f"{c.name}: {c.state.waiting.reason} {c.state.waiting.message or ''}"
            for c in pod.status.container_statuses or []
            if c.state and c.state.waiting
        ]
        lines.append(f"  pod {pod.metadata.name}: {pod.status.phase} {'; '.join(waiting)}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def tenant_factory(
    api_client: client.ApiClient, operator_process: OperatorProcess
) -> Iterator[Any]:
    """Create Ready tenants with the given limits; all deleted at the end of the module."""
    custom = client.CustomObjectsApi(api_client)
    names: list[str] = []

    def make(
        *,
        sandbox: dict[str, Any] | None = None,
        history: dict[str, Any] | None = None,
        owners: list[dict[str, Any]] | None = None,
        **limits: Any,
    ) -> Tenant:
        name = f"wf-{uuid.uuid4().hex[:6]}"
        custom.create_cluster_custom_object(
            GROUP,
            VERSION,
            "tenants",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Tenant",
                "metadata": {"name": name},
                "spec": {
                    "limits": limits,
                    **({"sandbox": sandbox} if sandbox else {}),
                    **({"history": history} if history else {}),
                    **({"owners": owners} if owners else {}),
                },
            },
        )
        names.append(name)
        try:
            wait_for(
                lambda: (
                    (
                        custom.get_cluster_custom_object(GROUP, VERSION, "tenants", name).get(
                            "status"
                        )
                        or {}
                    ).get("phase")
                    == "Ready"
                ),
                "tenant Ready",
                TENANT_READY_TIMEOUT,
            )
        except AssertionError as late:
            said = [
                line for line in operator_process.log_tail(200_000).splitlines() if name in line
            ]
            raise AssertionError(
                f"{late}\n{why_not_ready(api_client, name)}\n"
                f"the operator (alive: {operator_process.alive()}) on it:\n" + "\n".join(said[-15:])
            ) from None
        return Tenant(api_client, name)

    yield make
    for name in names:
        custom.delete_cluster_custom_object(GROUP, VERSION, "tenants", name)


@pytest.fixture(scope="module")
def tenant(tenant_factory: Any) -> Tenant:
    return tenant_factory(maxStepTimeoutSeconds=60)
