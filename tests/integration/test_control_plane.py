"""The dev control plane is a real one: scheduling, storage, RBAC and Pod Security all bite."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import privileged_pod, wait_for
from tenantflow_dev.devcluster.bootstrap import FAKE_TAINT

PAUSE = "registry.k8s.io/pause:3.10"


def _labels(app: str) -> dict[str, str]:
    return {"app": app}


def test_deployment_pod_runs_on_a_kwok_node(api_client: client.ApiClient, namespace: str) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=2,
                selector=client.V1LabelSelector(match_labels=_labels("web")),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=_labels("web")),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name="c", image=PAUSE)],
                        # kwok's nodes are tainted once a real node exists: ask for them
                        node_selector={"type": "kwok"},
                        tolerations=[
                            client.V1Toleration(
                                key=FAKE_TAINT["key"],
                                value=FAKE_TAINT["value"],
                                effect=FAKE_TAINT["effect"],
                            )
                        ],
                    ),
                ),
            ),
        ),
    )

    def running() -> list[client.V1Pod]:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        return pods if len(pods) == 2 and all(p.status.phase == "Running" for p in pods) else []

    pods = wait_for(running, "2 Running pods of the Deployment")
    assert all(p.spec.node_name.startswith("kwok-node-") for p in pods)  # type: ignore[union-attr]
    wait_for(
        lambda: (apps.read_namespaced_deployment("web", namespace).status.ready_replicas or 0) == 2,
        "Deployment readyReplicas=2",
    )


def test_pvc_binds_through_the_hostpath_provisioner(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_persistent_volume_claim(
        namespace,
        client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name="data"),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"],
                resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
            ),
        ),
    )
    pvc = wait_for(
        lambda: (
            (p := core.read_namespaced_persistent_volume_claim("data", namespace)).status.phase
            == "Bound"
            and p
        ),
        "PVC Bound",
    )
    assert pvc.spec.storage_class_name == "standard"  # type: ignore[union-attr]
    pv = core.read_persistent_volume(pvc.spec.volume_name)  # type: ignore[union-attr]
    assert pv.spec.host_path is not None


def test_rbac_denies_an_ordinary_user_until_granted(
    kubectl: object, namespace: str, api_client: client.ApiClient
) -> None:
    as_bob = ["--as=bob@example.com", "-n", namespace]
    denied = kubectl("get", "pods", *as_bob, check=False)  # type: ignore[operator]
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert 'User "bob@example.com" cannot list resource "pods"' in denied.stderr

    client.RbacAuthorizationV1Api(api_client).create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="bob-view"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"
            ),
            subjects=[
                client.RbacV1Subject(
                    kind="User", name="bob@example.com", api_group="rbac.authorization.k8s.io"
                )
            ],
        ),
    )
    wait_for(
        lambda: kubectl("get", "pods", *as_bob, check=False).returncode == 0,  # type: ignore[operator]
        "bob allowed after the RoleBinding",
    )


def test_pod_security_rejects_a_privileged_pod_in_a_restricted_namespace(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    pod = privileged_pod("root")
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(namespace, pod)
    assert err.value.status == 403
    assert "violates PodSecurity" in err.value.body
    assert "privileged" in err.value.body
