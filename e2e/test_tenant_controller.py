"""The operator provisions tenants on a real API server, repairs drift and tears down."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.utils import parse_quantity

from conftest import privileged_pod, wait_deleted, wait_for
from tenantflow.vocabulary import GROUP, VERSION

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def _tenant(name: str, owner: str, **limits: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Tenant",
        "metadata": {"name": name},
        "spec": {"owners": [{"kind": "User", "name": owner}], "limits": limits},
    }


@pytest.fixture
def make_tenant(
    api_client: client.ApiClient, operator_process: Any
) -> Iterator[Callable[..., dict[str, Any]]]:
    """Create a Tenant and wait until it is Ready; all are deleted afterwards."""
    custom = client.CustomObjectsApi(api_client)
    created: list[str] = []

    def make(owner: str = "alice@example.com", ready: bool = True, **limits: Any) -> dict[str, Any]:
        name = f"e2e-{uuid.uuid4().hex[:6]}"
        custom.create_cluster_custom_object(
            GROUP, VERSION, "tenants", _tenant(name, owner, **limits)
        )
        created.append(name)
        if ready:
            wait_for(lambda: phase(api_client, name) == "Ready", f"tenant {name} Ready", 60)
        return custom.get_cluster_custom_object(GROUP, VERSION, "tenants", name)

    yield make
    for name in created:
        with contextlib.suppress(ApiException):
            custom.delete_cluster_custom_object(GROUP, VERSION, "tenants", name)


def phase(api_client: client.ApiClient, name: str) -> str | None:
    obj = client.CustomObjectsApi(api_client).get_cluster_custom_object(
        GROUP, VERSION, "tenants", name
    )
    return (obj.get("status") or {}).get("phase")


def test_a_tenant_is_fully_provisioned(make_tenant: Any, api_client: client.ApiClient) -> None:
    tenant = make_tenant(maxConcurrentInstances=7)
    name, ns = tenant["metadata"]["name"], tenant["status"]["namespace"]
    assert ns == f"tenant-{name}"
    conds = {c["type"]: c for c in tenant["status"]["conditions"]}
    assert {t: c["status"] for t, c in conds.items()} == {
        "Ready": "True",
        "Reconciling": "False",  # kstatus' trio: Current
        "Stalled": "False",
        "NamespaceReady": "True",
        "StorageReady": "True",
        "SandboxReady": "True",
        "SecretsReady": "True",  # (it names none)
        "SandboxScaledToZero": "False",  # (its sandbox runs: this operator sets no idleAfter)
    }
    assert all(c["observedGeneration"] == tenant["metadata"]["generation"] for c in conds.values())
    core = client.CoreV1Api(api_client)
    namespace = core.read_namespace(ns)
    assert namespace.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace.metadata.owner_references[0].uid == tenant["metadata"]["uid"]
    quota = core.read_namespaced_resource_quota("tenant-quota", ns)
    assert parse_quantity(quota.spec.hard["count/workflowinstances.tenantflow.dev"]) == 1000
    assert quota.spec.hard["requests.storage"] == str(2 * 2**30), "its data and its history"
    sa = core.read_namespaced_service_account("tenant-sandbox", ns)
    assert sa.automount_service_account_token is False
    sts = client.AppsV1Api(api_client).read_namespaced_stateful_set("sandbox", ns)
    ctr = sts.spec.template.spec.containers[0]
    assert ctr.security_context.read_only_root_filesystem is True
    assert ctr.security_context.capabilities.drop == ["ALL"]
    assert sts.spec.template.spec.security_context.seccomp_profile.type == "RuntimeDefault"
    policies = {
        p.metadata.name
        for p in client.NetworkingV1Api(api_client).list_namespaced_network_policy(ns).items
    }
    assert {"default-deny", "allow-operator-to-sandbox", "allow-dns"} <= policies
    assert core.read_namespaced_secret("tenant-hmac", ns).data["key"]


def test_pod_security_rejects_privileged_pods_in_a_tenant_namespace(
    make_tenant: Any, api_client: client.ApiClient
) -> None:
    ns = make_tenant()["status"]["namespace"]
    pod = privileged_pod("evil")
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api_client).create_namespaced_pod(ns, pod)
    assert err.value.status == 403 and "violates PodSecurity" in err.value.body


def test_owners_reach_their_tenant_and_nothing_else(make_tenant: Any, kubectl: Kubectl) -> None:
    a = make_tenant(owner="alice@a.example")["status"]["namespace"]
    b = make_tenant(owner="bob@b.example")["status"]["namespace"]
    wfi = yaml.safe_dump(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkflowInstance",
            "metadata": {"name": "mine"},
            "spec": {"workflowRef": {"name": "x"}},
        }
    )
    as_alice = "--as=alice@a.example"
    kubectl("apply", as_alice, "-n", a, "-f", "-", input=wfi)
    assert kubectl("get", "wfi", "mine", as_alice, "-n", a).returncode == 0
    for args in (
        ("get", "wfi", "-n", b),
        ("get", "configmaps", "-n", b),
        ("get", "secrets", "-n", a),
        ("get", "tenants"),
    ):
        denied = kubectl(*args, as_alice, check=False)
        assert denied.returncode != 0 and "forbidden" in denied.stderr, args
    write_b = kubectl("apply", as_alice, "-n", b, "-f", "-", input=wfi, check=False)
    assert write_b.returncode != 0 and "forbidden" in write_b.stderr
    patch = kubectl(
        "patch",
        "tenant",
        a.removeprefix("tenant-"),
        as_alice,
        "--type=merge",
        "-p",
        '{"spec":{"limits":{"maxConcurrentInstances":99999}}}',
        check=False,
    )
    assert patch.returncode != 0 and "forbidden" in patch.stderr


@pytest.mark.parametrize(
    "kind,name",
    [
        ("role", "tenant-editor"),
        ("rolebinding", "tenant-editor"),
        ("networkpolicy", "default-deny"),
        ("resourcequota", "tenant-quota"),
        ("limitrange", "tenant-limits"),
        ("serviceaccount", "tenant-sandbox"),
        ("service", "sandbox"),
        ("statefulset", "sandbox"),
        ("secret", "tenant-hmac"),
    ],
)
def test_deleted_owned_objects_come_back(
    make_tenant: Any, kubectl: Kubectl, kind: str, name: str
) -> None:
    ns = make_tenant()["status"]["namespace"]
    uid = kubectl("get", kind, name, "-n", ns, "-o", "jsonpath={.metadata.uid}").stdout
    kubectl("delete", kind, name, "-n", ns, "--wait=false")
    wait_for(
        lambda: (
            (
                new := kubectl(
                    "get", kind, name, "-n", ns, "-o", "jsonpath={.metadata.uid}", check=False
                )
            ).returncode
            == 0
            and new.stdout not in ("", uid)
        ),
        f"{kind}/{name} restored",
        timeout=10,
    )


def test_hand_edits_are_reverted_and_spec_changes_applied(
    make_tenant: Any, kubectl: Kubectl, api_client: client.ApiClient
) -> None:
    tenant = make_tenant()
    name, ns = tenant["metadata"]["name"], tenant["status"]["namespace"]
    kubectl(
        "patch",
        "resourcequota",
        "tenant-quota",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec":{"hard":{"pods":"500"}}}',
    )
    wait_for(
        lambda: (
            kubectl(
                "get", "resourcequota", "tenant-quota", "-n", ns, "-o", "jsonpath={.spec.hard.pods}"
            ).stdout
            == "3"
        ),
        "quota restored",
        10,
    )
    kubectl(
        "patch",
        "tenant",
        name,
        "--type=merge",
        "-p",
        '{"spec":{"limits":{"maxConcurrentInstances":200}}}',
    )
    wait_for(
        lambda: (
            kubectl(
                "get",
                "resourcequota",
                "tenant-quota",
                "-n",
                ns,
                "-o",
                "jsonpath={.spec.hard.count/workflowinstances\\.tenantflow\\.dev}",
            ).stdout
            == "2k"
        ),
        "quota follows the new limit",
        10,
    )


def test_deleting_a_tenant_removes_everything(
    make_tenant: Any, api_client: client.ApiClient
) -> None:
    tenant = make_tenant()
    name, ns = tenant["metadata"]["name"], tenant["status"]["namespace"]
    client.CustomObjectsApi(api_client).delete_cluster_custom_object(
        GROUP, VERSION, "tenants", name
    )
    core = client.CoreV1Api(api_client)
    wait_deleted(lambda: core.read_namespace(ns), f"namespace {ns} deleted")
    with pytest.raises(ApiException) as err:
        client.CustomObjectsApi(api_client).get_cluster_custom_object(
            GROUP, VERSION, "tenants", name
        )
    assert err.value.status == 404


def test_a_foreign_namespace_is_never_touched(
    make_tenant: Any, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=f"tenant-{name}", labels={"owner": "someone-else"})
        )
    )
    try:
        custom = client.CustomObjectsApi(api_client)
        custom.create_cluster_custom_object(GROUP, VERSION, "tenants", _tenant(name, "x@y"))
        wait_for(lambda: phase(api_client, name) == "Degraded", "Degraded", 30)
        tenant = custom.get_cluster_custom_object(GROUP, VERSION, "tenants", name)
        ready = next(c for c in tenant["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "NamespaceConflict" and "already exists" in ready["message"]
        assert core.list_namespaced_resource_quota(f"tenant-{name}").items == []
        assert core.read_namespace(f"tenant-{name}").metadata.labels == {
            "owner": "someone-else",
            "kubernetes.io/metadata.name": f"tenant-{name}",
        }
        custom.delete_cluster_custom_object(GROUP, VERSION, "tenants", name)
        wait_for(
            lambda: (
                not [
                    t
                    for t in custom.list_cluster_custom_object(GROUP, VERSION, "tenants")["items"]
                    if t["metadata"]["name"] == name
                ]
            ),
            "tenant deleted",
            30,
        )
        assert core.read_namespace(f"tenant-{name}").status.phase == "Active"
    finally:
        core.delete_namespace(f"tenant-{name}")
