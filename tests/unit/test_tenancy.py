"""Tenant manifests and status logic (pure)."""

from __future__ import annotations

import pytest

from tenantflow.api.tenant import Tenant
from tenantflow.tenancy import manifests, status

pytestmark = pytest.mark.unit


def tenant(**spec: object) -> Tenant:
    return Tenant.model_validate({"metadata": {"name": "acme", "uid": "u-1"}, "spec": spec})


def test_every_owned_object_is_labelled_and_owned_by_the_tenant() -> None:
    objs = manifests.owned_objects(tenant(), manifests.OperatorSettings())
    assert objs[0]["kind"] == "Namespace"
    for obj in objs:
        meta = obj["metadata"]
        assert meta["labels"][manifests.TENANT_LABEL] == "acme"
        assert meta["ownerReferences"][0]["uid"] == "u-1"
        assert obj["kind"] == "Namespace" or meta["namespace"] == "tenant-acme"


def test_quota_scales_with_limits_and_replicas() -> None:
    t = tenant(
        limits={"maxConcurrentInstances": 300, "storage": "5Gi"},
        sandbox={
            "replicas": 2,
            "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi"}},
        },
    )
    hard = manifests.resource_quota(t)["spec"]["hard"]
    assert hard["count/workflowinstances.tenantflow.dev"] == "3000"
    assert hard["requests.storage"] == "5Gi"
    assert hard["pods"] == "4"
    assert hard["requests.cpu"] == "1000m" and hard["limits.memory"] == "4Gi"


def test_egress_policy_only_when_cidrs_are_given() -> None:
    names = {
        p["metadata"]["name"]
        for p in manifests.network_policies(tenant(), manifests.OperatorSettings())
    }
    assert "allow-egress" not in names
    with_egress = manifests.network_policies(
        tenant(sandbox={"egress": ["10.0.0.0/8"]}), manifests.OperatorSettings()
    )
    egress = next(p for p in with_egress if p["metadata"]["name"] == "allow-egress")
    assert egress["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "10.0.0.0/8"}}]


def test_sandbox_pods_meet_the_restricted_pod_security_profile() -> None:
    sts = manifests.sandbox_statefulset(
        tenant(sandbox={"runtimeClassName": "gvisor"}),
        manifests.OperatorSettings(sandbox_image="img:1"),
    )
    pod = sts["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for ctr in pod["containers"]:
        assert ctr["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert ctr["securityContext"]["allowPrivilegeEscalation"] is False
        assert ctr["securityContext"]["readOnlyRootFilesystem"] is True
        assert ctr["image"] == "img:1" and "env" not in ctr  # no key in any environment
    assert pod["runtimeClassName"] == "gvisor"
    assert pod["automountServiceAccountToken"] is False


def test_only_the_runner_container_sees_the_key_and_only_the_worker_the_data() -> None:
    pod = manifests.sandbox_statefulset(tenant(), manifests.OperatorSettings())["spec"]
    containers = {c["name"]: c for c in pod["template"]["spec"]["containers"]}
    mounts = {n: {m["name"] for m in c["volumeMounts"]} for n, c in containers.items()}
    assert mounts == {"runner": {"key", "run"}, "worker": {"data", "tmp", "run"}}
    uids = {n: c["securityContext"]["runAsUser"] for n, c in containers.items()}
    assert uids["runner"] != uids["worker"]
    assert pod["template"]["spec"]["shareProcessNamespace"] is False
    probe = containers["worker"]["livenessProbe"]["httpGet"]
    assert probe["path"] == "/livez/worker"


def test_named_secrets_are_read_only_files_in_both_containers_never_environment() -> None:
    pod = manifests.sandbox_statefulset(
        tenant(sandbox={"secrets": ["git", "registry"]}), manifests.OperatorSettings()
    )["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for name, volume in {"secret-0": "git", "secret-1": "registry"}.items():
        assert volumes[name]["secret"] == {
            "secretName": volume,
            "defaultMode": 0o440,
            "optional": True,  # a Secret not created yet: a clear error in the step
        }
    for ctr in pod["containers"]:  # the worker reads them, the runner masks their values
        mounts = {m["mountPath"]: m for m in ctr["volumeMounts"]}
        for volume in ("git", "registry"):
            assert mounts[f"{manifests.SECRETS_DIR}/{volume}"]["readOnly"] is True
        assert ctr["args"][ctr["args"].index("--secrets") + 1] == manifests.SECRETS_DIR
        assert "env" not in ctr and "envFrom" not in ctr
    plain = manifests.sandbox_statefulset(tenant(), manifests.OperatorSettings())
    assert "--secrets" not in str(plain)


def test_owner_subjects_become_role_binding_subjects() -> None:
    t = tenant(
        owners=[
            {"kind": "User", "name": "alice"},
            {"kind": "ServiceAccount", "name": "ci", "namespace": "ci"},
        ]
    )
    binding = manifests.roles(t)[-1]
    assert binding["subjects"] == [
        {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
        {"kind": "ServiceAccount", "name": "ci", "namespace": "ci"},
    ]


@pytest.mark.parametrize(
    ("observed", "phase", "reason"),
    [
        (
            status.Observed(
                namespace_phase="Active", quota_counted=True, pvc_phase="Bound", sandbox_ready=1
            ),
            "Ready",
            "Ready",
        ),
        (
            status.Observed(
                namespace_phase="Active", quota_counted=False, pvc_phase="Bound", sandbox_ready=1
            ),
            "Provisioning",
            "Provisioning",
        ),
        (
            status.Observed(namespace_phase="Active", quota_counted=True, pvc_phase="Pending"),
            "Provisioning",
            "Provisioning",
        ),
        (status.Observed(conflict="not ours"), "Degraded", "NamespaceConflict"),
        (status.Observed(error="boom"), "Degraded", "ApplyFailed"),
    ],
)
def test_phase_and_ready_reason(observed: status.Observed, phase: str, reason: str) -> None:
    got_phase, conds = status.conditions(observed)
    assert got_phase == phase
    assert conds[0].type == "Ready" and conds[0].reason == reason


def test_a_tenant_image_runs_only_when_the_operator_allows_it() -> None:
    settings = manifests.OperatorSettings(
        sandbox_image="reg/sandbox:1", allowed_images=("reg/sandboxes/*",)
    )

    def sandbox_images(image: str | None) -> list[str]:
        objs = manifests.owned_objects(tenant(sandbox={"image": image}), settings)
        return [
            c["image"]
            for o in objs
            if o["kind"] == "StatefulSet"
            for c in o["spec"]["template"]["spec"]["containers"]
        ]

    assert sandbox_images(None) == ["reg/sandbox:1"] * 2
    assert sandbox_images("reg/sandbox:1") == ["reg/sandbox:1"] * 2
    assert sandbox_images("reg/sandboxes/ci:3") == ["reg/sandboxes/ci:3"] * 2
    # refused: the StatefulSet is not applied at all, so the running sandbox keeps its image
    assert sandbox_images("evil.example.com/miner:1") == []
    problem = settings.image_problem("evil.example.com/miner:1")
    assert problem is not None and "reg/sandboxes/*" in problem and "allowedImages" in problem
    phase, conds = status.conditions(status.Observed(refused_image=problem, sandbox_ready=1))
    by_type = {c.type: c for c in conds}
    assert phase == "Degraded"
    assert by_type["Ready"].reason == by_type["SandboxReady"].reason == "ImageNotAllowed"
    assert by_type["SandboxReady"].message == problem
