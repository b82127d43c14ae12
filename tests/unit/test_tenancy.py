"""Tenant manifests and status logic (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from tenantflow.api.admission import shard_label_policy
from tenantflow.api.tenant import Tenant
from tenantflow.controllers.persist import Persist
from tenantflow.controllers.tenant import Reconciled, TenantNotApplied, reconcile
from tenantflow.controllers.wiring import settings_from_env
from tenantflow.kube.client import ApiException
from tenantflow.kube.events import EventRecorder
from tenantflow.tenancy import manifests, status
from tenantflow.tenancy.sharding import shard_of
from tenantflow.vocabulary import API_VERSION, SHARD_LABEL, TENANT, TENANT_LABEL
from tenantflow_dev.fake_kube import FakeKube

pytestmark = pytest.mark.unit


def tenant(**spec: object) -> Tenant:
    return Tenant.model_validate({"metadata": {"name": "acme", "uid": "u-1"}, "spec": spec})


def test_every_owned_object_is_labelled_and_owned_by_the_tenant() -> None:
    objs = manifests.owned_objects(tenant(), manifests.OperatorSettings())
    assert objs[0]["kind"] == "Namespace"
    for obj in objs:
        meta = obj["metadata"]
        assert meta["labels"][TENANT_LABEL] == "acme"
        assert meta["ownerReferences"][0]["uid"] == "u-1"
        assert obj["kind"] == "Namespace" or meta["namespace"] == "tenant-acme"


def test_the_namespace_carries_its_shard_for_the_admission_policy_to_copy() -> None:
    settings = manifests.OperatorSettings(shards=7)
    ns = manifests.namespace(tenant(), settings)
    assert ns["metadata"]["labels"][SHARD_LABEL] == str(shard_of("tenant-acme", 7))
    policy, binding = shard_label_policy()
    mutation = policy["spec"]["mutations"][0]["applyConfiguration"]["expression"]
    assert f'namespaceObject.metadata.labels["{SHARD_LABEL}"]' in mutation
    assert policy["spec"]["failurePolicy"] == "Ignore", "an unlabelled instance is still driven"
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]


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
    assert hard["requests.storage"] == str(6 * 2**30), "its data (5Gi) and its history (1Gi)"
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


def test_only_the_runner_sees_the_key_and_the_history_and_only_the_worker_the_data() -> None:
    pod = manifests.sandbox_statefulset(tenant(), manifests.OperatorSettings())["spec"]
    containers = {c["name"]: c for c in pod["template"]["spec"]["containers"]}
    mounts = {n: {m["name"] for m in c["volumeMounts"]} for n, c in containers.items()}
    assert mounts == {"runner": {"key", "history"}, "worker": {"data", "tmp"}}
    uids = {n: c["securityContext"]["runAsUser"] for n, c in containers.items()}
    assert uids["runner"] != uids["worker"]
    # no shared socket file tenant code could replace; the zygote serves the runner's uid only
    worker_args = containers["worker"]["args"]
    assert worker_args[worker_args.index("--listen") + 1].startswith("@")
    assert worker_args[worker_args.index("--runner-uid") + 1] == str(uids["runner"])
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


async def reconcile_acme(kube: FakeKube) -> Reconciled:
    """One reconcile of Tenant acme, as the controller runs it."""
    return await reconcile(kube, EventRecorder(kube), Persist(kube), SETTINGS, lambda _: {}, "acme")


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


SETTINGS = manifests.OperatorSettings(
    sandbox_image="reg/sandbox:1",
    allowed_images=("reg/sandboxes/*",),
    protected_cidrs=("10.245.0.0/16", "10.96.0.0/12", "10.246.0.1/32"),
)


CUT = ["10.245.0.0/16", "10.246.0.1/32", "10.96.0.0/12"]  # the protected ranges, sorted


async def reconciled(**sandbox: Any) -> FakeKube:
    """One reconcile of the Tenant controller against the in-memory API."""
    kube = FakeKube()
    body = tenant(sandbox=sandbox).model_dump(by_alias=True, exclude_none=True)
    kube.put({**body, "apiVersion": API_VERSION, "kind": TENANT})
    await reconcile_acme(kube)
    return kube


def sandbox_images(kube: FakeKube) -> list[str]:
    sts = kube.read("apps/v1", "StatefulSet", manifests.SANDBOX, "tenant-acme")
    return [c["image"] for c in sts["spec"]["template"]["spec"]["containers"]] if sts else []


def tenant_conditions(kube: FakeKube) -> tuple[str, dict[str, Any]]:
    st = kube.read(API_VERSION, TENANT, "acme")["status"]
    return st["phase"], {c["type"]: c for c in st["conditions"]}


async def test_a_tenant_image_runs_only_when_the_operator_allows_it() -> None:
    assert sandbox_images(await reconciled()) == ["reg/sandbox:1"] * 2
    assert sandbox_images(await reconciled(image="reg/sandbox:1")) == ["reg/sandbox:1"] * 2
    assert (
        sandbox_images(await reconciled(image="reg/sandboxes/ci:3")) == ["reg/sandboxes/ci:3"] * 2
    )
    # refused: the StatefulSet is not applied at all, so a running sandbox keeps its image
    kube = await reconciled(image="evil.example.com/miner:1")
    assert sandbox_images(kube) == []
    phase, conds = tenant_conditions(kube)
    assert phase == "Degraded"
    assert conds["Ready"]["reason"] == conds["SandboxReady"]["reason"] == "ImageNotAllowed"
    assert "reg/sandboxes/*" in conds["SandboxReady"]["message"]
    assert "allowedImages" in conds["SandboxReady"]["message"]


async def test_egress_cidrs_never_cover_the_clusters_own_ranges() -> None:
    kube = await reconciled(egress=["10.0.0.0/8", "203.0.113.0/24", "10.245.3.0/24"])
    policy = kube.read("networking.k8s.io/v1", "NetworkPolicy", "allow-egress", "tenant-acme")
    assert policy["spec"]["egress"] == [
        {
            "to": [
                {
                    "ipBlock": {
                        "cidr": "10.0.0.0/8",
                        "except": ["10.245.0.0/16", "10.246.0.1/32", "10.96.0.0/12"],
                    }
                },
                {"ipBlock": {"cidr": "203.0.113.0/24"}},
            ]
        }
    ]
    phase, conds = tenant_conditions(kube)  # the entry inside the pod network: refused, said
    assert phase == "Degraded" and conds["Ready"]["reason"] == "EgressRefused"
    assert (
        "10.245.3.0/24" in conds["Ready"]["message"] and "egressHosts" in conds["Ready"]["message"]
    )


async def test_egress_hosts_get_a_proxy_the_sandbox_can_only_go_through() -> None:
    kube = await reconciled(
        egressHosts=[{"host": "git.example.com", "ports": [443, 80], "addresses": ["203.0.113.9"]}]
    )
    ns = "tenant-acme"
    kube.objects[("v1", "Service", ns, "egress-proxy")]["spec"]["clusterIP"] = "10.96.0.77"
    await reconcile(
        kube, EventRecorder(kube), Persist(kube), SETTINGS, lambda _: {}, "acme"
    )  # as the next event would
    proxy = kube.read("apps/v1", "Deployment", "egress-proxy", ns)["spec"]["template"]["spec"]
    (ctr,) = proxy["containers"]
    assert ctr["image"] == "reg/sandbox:1", "the platform's image, never the tenant's"
    args = " ".join(ctr["args"])
    assert "--allow git.example.com:443,80 --pin git.example.com=203.0.113.9" in args
    assert "--protect 10.245.0.0/16 --protect 10.96.0.0/12 --protect 10.246.0.1/32" in args
    worker = next(
        c
        for c in kube.read("apps/v1", "StatefulSet", "sandbox", ns)["spec"]["template"]["spec"][
            "containers"
        ]
        if c["name"] == "worker"
    )
    assert {e["name"]: e["value"] for e in worker["env"]}["HTTPS_PROXY"] == "http://10.96.0.77:3128"
    to_proxy = kube.read(
        "networking.k8s.io/v1", "NetworkPolicy", "allow-sandbox-to-egress-proxy", ns
    )
    assert to_proxy["spec"]["egress"][0]["to"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "egress-proxy"}}}
    ]
    out = kube.read("networking.k8s.io/v1", "NetworkPolicy", "egress-proxy", ns)["spec"]["egress"]
    assert {"cidr": "0.0.0.0/0", "except": CUT} in [t["ipBlock"] for t in out[0]["to"]]


def test_the_operator_reads_its_lists_from_the_charts_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TENANTFLOW_ALLOWED_SANDBOX_IMAGES", "reg/a/*, reg/b:1")
    monkeypatch.setenv("TENANTFLOW_PROTECTED_CIDRS", "10.0.0.0/8,fd00::/8,")
    settings, _, _ = settings_from_env()
    assert settings.allowed_images == ("reg/a/*", "reg/b:1")
    assert settings.protected_cidrs == ("10.0.0.0/8", "fd00::/8")


class RefusingRoles(FakeKube):
    """The API server refusing the tenant's Roles (as RBAC's escalation check did when the
    operator lacked a permission the roles grant), until `allow`."""

    allow: bool = False

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj["kind"] == "Role" and not self.allow:
            raise ApiException(status=403, reason="Forbidden")
        return await super().apply(obj)


async def test_a_tenant_whose_objects_are_refused_says_so_and_is_tried_again() -> None:
    kube = RefusingRoles()
    body = tenant().model_dump(by_alias=True, exclude_none=True)
    kube.put({**body, "apiVersion": API_VERSION, "kind": TENANT})
    with pytest.raises(TenantNotApplied, match="403"):  # the queue retries it, backing off
        await reconcile_acme(kube)
    ready = next(c for c in kube.read(API_VERSION, TENANT, "acme")["status"]["conditions"])
    assert ready["reason"] == "ApplyFailed" and "403" in ready["message"]
    kube.allow = True
    assert (await reconcile_acme(kube)).written
    assert kube.read("rbac.authorization.k8s.io/v1", "Role", "tenant-editor", "tenant-acme")


def test_a_missing_secret_is_said_on_its_own_and_never_holds_ready_back() -> None:
    """Issue 36.5: a platform delivers a tenant's Secrets after the Tenant (it makes their
    namespace); GitOps waves wait for the Tenant's health before the next wave."""
    ready = status.Observed(
        namespace_phase="Active",
        quota_counted=True,
        pvc_phase="Bound",
        sandbox_ready=1,
        missing_secrets=("api-token",),
        namespace="tenant-acme",
    )
    phase, conds = status.conditions(ready)
    secrets = next(c for c in conds if c.type == "SecretsReady")
    assert phase == "Ready"
    assert (secrets.status, secrets.reason) == (False, "SecretNotFound")
    assert (
        "api-token" in secrets.message and "kubectl -n tenant-acme create secret" in secrets.message
    )


async def test_the_tenant_looks_again_until_the_secrets_it_names_exist() -> None:
    kube = FakeKube()
    body = tenant(sandbox={"secrets": ["api-token"]}).model_dump(by_alias=True, exclude_none=True)
    kube.put({**body, "apiVersion": API_VERSION, "kind": TENANT})
    done = await reconcile_acme(kube)
    assert done.written and done.missing_secrets, "asked to look again"
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "api-token", "namespace": "tenant-acme"},
        }
    )
    done = await reconcile_acme(kube)
    assert not done.missing_secrets
    conds = kube.read(API_VERSION, TENANT, "acme")["status"]["conditions"]
    assert next(c for c in conds if c["type"] == "SecretsReady")["status"] == "True"
