"""The objects the operator owns in `tenant-<name>`, rendered from a Tenant (pure)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from tenantflow.api.tenant import Tenant
from tenantflow.owners import controller_ref
from tenantflow.quantity import parse_quantity
from tenantflow.tenancy import egress, sharding, status
from tenantflow.tenancy.pods import container_security, pod_security
from tenantflow.tenancy.sharding import shard_of
from tenantflow.vocabulary import (
    GROUP,
    HISTORY_PROXY,
    SHARD_LABEL,
    TENANT,
    TENANT_LABEL,
    namespace_of,
)

MANAGED_BY = {"app.kubernetes.io/managed-by": "tenantflow"}
SANDBOX = "sandbox"
SANDBOX_PORT = 8080
HISTORY_PORT = 8081  # the history, read-only: the API server's service proxy, for people
SERVICE_ACCOUNT = "tenant-sandbox"
PVC = "tenant-data"
HISTORY_PVC = "tenant-history"  # mounted only in the runner container (issue 34)
HISTORY_DIR = "/var/lib/tenantflow/history"
HMAC_SECRET = "tenant-hmac"
PSS = "restricted"


@dataclass(frozen=True)
class OperatorSettings:
    """Cluster-wide settings of this operator installation (from its Deployment env)."""

    namespace: str = "tenantflow-system"
    sandbox_image: str = "ghcr.io/tenantflow/sandbox:0.2.0-dev"
    dns_namespace: str = "kube-system"
    # an address every sandbox's NetworkPolicy denies; runners run no tenant code while it
    # answers ("kubernetes": the API server's service; "" turns the check off)
    isolation_canary: str = "kubernetes"
    # images a Tenant may choose (spec.sandbox.image), as fnmatch patterns; the default
    # sandbox image is always allowed
    allowed_images: tuple[str, ...] = ()
    # the cluster's own ranges (pods, services, nodes): cut out of every egress CIDR and
    # never reached through an egress proxy
    protected_cidrs: tuple[str, ...] = ()
    # tenants are split into this many shards among the replicas: fixed for the life of an
    # install (each tenant namespace carries its shard as a label)
    shards: int = sharding.SHARDS
    # seconds without work before a tenant's sandbox is scaled to zero, unless the Tenant
    # says otherwise (spec.sandbox.idleAfter, alwaysOn); None: always on
    idle_after: float | None = None

    def image_problem(self, image: str | None) -> str | None:
        """Why a Tenant may not run `image` (None: it may)."""
        if image is None or image == self.sandbox_image:
            return None
        if any(fnmatch.fnmatchcase(image, pattern) for pattern in self.allowed_images):
            return None
        allowed = ", ".join(self.allowed_images) or "none besides the default"
        return (
            f"spec.sandbox.image {image!r} is not allowed by this operator (allowed: "
            f"{allowed}); use an allowed image, or add a pattern to the chart's "
            "sandbox.allowedImages. The sandbox keeps its current image"
        )


def labels(tenant_name: str, **extra: str) -> dict[str, str]:
    return {**MANAGED_BY, TENANT_LABEL: tenant_name, **extra}


def _meta(tenant: Tenant, name: str, *, namespaced: bool = True, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": labels(tenant.metadata.name),
        "ownerReferences": [controller_ref(TENANT, tenant.metadata.name, tenant.metadata.uid)],
        **extra,
    }
    if namespaced:
        meta["namespace"] = namespace_of(tenant.metadata.name)
    return meta


def namespace(tenant: Tenant, settings: OperatorSettings) -> dict[str, Any]:
    name = namespace_of(tenant.metadata.name)
    meta = _meta(tenant, name, namespaced=False)
    meta["labels"].update(
        {f"pod-security.kubernetes.io/{mode}": PSS for mode in ("enforce", "audit", "warn")}
    )
    # copied onto each instance created here (crds/shard-label-policy.yaml): replicas
    # watch only their shards' instances
    meta["labels"][SHARD_LABEL] = str(shard_of(name, settings.shards))
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def resource_quota(tenant: Tenant) -> dict[str, Any]:
    lim, box = tenant.spec.limits, tenant.spec.sandbox
    pods = box.replicas + 2 + (1 if box.egress_hosts else 0)  # room for a rolling restart
    hard = {
        "pods": str(pods),
        "requests.storage": str(
            int(parse_quantity(lim.storage) + parse_quantity(tenant.spec.history.size))
        ),
        "persistentvolumeclaims": "2",  # its data, its history
        "count/workflowinstances.tenantflow.dev": str(max(1000, 10 * lim.max_concurrent_instances)),
        "count/workflowdefinitions.tenantflow.dev": "500",
        "configmaps": "200",
        "secrets": "20",
        "services": "2",
    }
    for res in ("cpu", "memory"):
        if res in box.resources.requests:
            hard[f"requests.{res}"] = _times(box.resources.requests[res], pods)
        if res in box.resources.limits:
            hard[f"limits.{res}"] = _times(box.resources.limits[res], pods)
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _meta(tenant, "tenant-quota"),
        "spec": {"hard": hard},
    }


def _times(quantity: str, n: int) -> str:
    """Multiply a quantity string (100m, 512Mi, 1) by n, keeping its unit."""
    digits = quantity.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    unit = quantity[len(digits) :]
    value = float(digits) * n
    return f"{int(value) if value.is_integer() else value}{unit}"


def limit_range(tenant: Tenant) -> dict[str, Any]:
    res = tenant.spec.sandbox.resources
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _meta(tenant, "tenant-limits"),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": dict(res.limits),
                    "defaultRequest": dict(res.requests),
                }
            ]
        },
    }


def network_policies(tenant: Tenant, settings: OperatorSettings) -> list[dict[str, Any]]:
    def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(tenant, name),
            "spec": spec,
        }

    sandbox_pods = {"matchLabels": {"app.kubernetes.io/name": SANDBOX}}
    out = [
        policy("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        policy(
            "allow-operator-to-sandbox",
            {
                "podSelector": sandbox_pods,
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [_namespace_peer(settings.namespace)],
                        "ports": [
                            {"protocol": "TCP", "port": SANDBOX_PORT},
                            {"protocol": "TCP", "port": HISTORY_PORT},
                        ],
                    }
                ],
            },
        ),
        policy(
            "allow-dns",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [_namespace_peer(settings.dns_namespace)],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        ),
    ]
    blocks, _ = egress.cut(tenant.spec.sandbox.egress, settings.protected_cidrs)
    if blocks:
        out.append(
            policy(
                "allow-egress",
                {
                    "podSelector": sandbox_pods,
                    "policyTypes": ["Egress"],
                    "egress": [{"to": [{"ipBlock": b} for b in blocks]}],
                },
            )
        )
    if tenant.spec.sandbox.egress_hosts:
        proxy_pods = {"matchLabels": {"app.kubernetes.io/name": egress.PROXY}}
        out += [
            policy(
                "allow-sandbox-to-egress-proxy",
                {
                    "podSelector": sandbox_pods,
                    "policyTypes": ["Egress"],
                    "egress": [
                        {
                            "to": [{"podSelector": proxy_pods}],
                            "ports": [{"protocol": "TCP", "port": egress.PROXY_PORT}],
                        }
                    ],
                },
            ),
            policy(
                egress.PROXY,
                {
                    "podSelector": proxy_pods,
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [
                        {
                            "from": [{"podSelector": sandbox_pods}],
                            "ports": [{"protocol": "TCP", "port": egress.PROXY_PORT}],
                        },
                        {
                            "from": [_namespace_peer(settings.namespace)],
                            "ports": [{"protocol": "TCP", "port": egress.PROXY_METRICS_PORT}],
                        },
                    ],
                    "egress": egress.proxy_egress(settings.protected_cidrs),
                },
            ),
        ]
    return out


def _namespace_peer(namespace: str) -> dict[str, Any]:
    """A NetworkPolicy peer: every pod of one namespace (by its immutable name label)."""
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}


def egress_proxy(
    tenant: Tenant, settings: OperatorSettings, awake: bool = True
) -> list[dict[str, Any]]:
    """The tenant's egress proxy (only with spec.sandbox.egressHosts): a Deployment and the
    Service whose address the sandbox's proxy variables name; at zero replicas with its
    sandbox (`awake` False: idle, tenancy/idle.py)."""
    if not tenant.spec.sandbox.egress_hosts:
        return []
    pod_labels = labels(tenant.metadata.name, **{"app.kubernetes.io/name": egress.PROXY})
    selector = {"app.kubernetes.io/name": egress.PROXY}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(tenant, egress.PROXY),
            "spec": {
                "selector": selector,
                "ports": [{"name": "proxy", "port": egress.PROXY_PORT}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(tenant, egress.PROXY),
            "spec": {
                "replicas": 1 if awake else 0,  # always applied: the field stays ours
                # a changed allow-list must not be served by the old proxy alongside the new
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": egress.proxy_pod_spec(
                        tenant, settings.sandbox_image, settings.protected_cidrs
                    ),
                },
            },
        },
    ]


def refusals(tenant: Tenant, settings: OperatorSettings) -> list[tuple[str, str]]:
    """(reason, message) for each part of the Tenant's spec the operator does not apply."""
    found = []
    image = settings.image_problem(tenant.spec.sandbox.image)
    if image:
        found.append((status.IMAGE_NOT_ALLOWED, image))
    _, refused = egress.cut(tenant.spec.sandbox.egress, settings.protected_cidrs)
    if refused:
        message = egress.refused_message(refused, settings.protected_cidrs)
        found.append((status.EGRESS_REFUSED, message))
    return found


def service_account(tenant: Tenant) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(tenant, SERVICE_ACCOUNT),
        "automountServiceAccountToken": False,
    }


_TENANT_KINDS = ["workflowdefinitions", "workflowinstances", "workflowschedules"]
_READ = ["get", "list", "watch"]


def roles(tenant: Tenant) -> list[dict[str, Any]]:
    def role(name: str, write: bool) -> dict[str, Any]:
        verbs = [*_READ, "create", "update", "patch", "delete"] if write else _READ
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(tenant, name),
            "rules": [
                {"apiGroups": [GROUP], "resources": _TENANT_KINDS, "verbs": verbs},
                {
                    "apiGroups": [GROUP],
                    "resources": [f"{k}/status" for k in _TENANT_KINDS],
                    "verbs": _READ,
                },
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": verbs},
                {"apiGroups": [""], "resources": ["pods", "pods/log", "events"], "verbs": _READ},
                {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": _READ},
                {  # the tenant's history, through the API server (sandbox:history)
                    "apiGroups": [""],
                    "resources": ["services/proxy"],
                    "resourceNames": list(HISTORY_PROXY),
                    "verbs": ["get"],
                },
            ],
        }

    subjects = [
        {
            k: v
            for k, v in {
                "kind": s.kind,
                "name": s.name,
                "namespace": s.namespace,
                "apiGroup": None if s.kind == "ServiceAccount" else "rbac.authorization.k8s.io",
            }.items()
            if v is not None
        }
        for s in tenant.spec.owners
    ]
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(tenant, "tenant-editor"),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "tenant-editor",
        },
        "subjects": subjects,
    }
    return [role("tenant-editor", True), role("tenant-viewer", False), binding]


def pvc(tenant: Tenant) -> dict[str, Any]:
    """The tenant's data volume (`env.db`), mounted in the worker container."""
    return _claim(tenant, PVC, tenant.spec.limits.storage)


def history_pvc(tenant: Tenant) -> dict[str, Any]:
    """The tenant's history (archive, log lines): mounted only in the runner container,
    so tenant code can neither read nor rewrite it."""
    return _claim(tenant, HISTORY_PVC, tenant.spec.history.size)


def _claim(tenant: Tenant, name: str, size: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(tenant, name),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


def hmac_secret(tenant: Tenant, key: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(tenant, HMAC_SECRET),
        "type": "Opaque",
        "stringData": {"key": key},
    }


def sandbox_service(tenant: Tenant) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(tenant, SANDBOX),
        "spec": {
            "clusterIP": "None",
            "selector": {"app.kubernetes.io/name": SANDBOX},
            "ports": [
                {"name": "runner", "port": SANDBOX_PORT, "targetPort": SANDBOX_PORT},
                {"name": "history", "port": HISTORY_PORT, "targetPort": HISTORY_PORT},
            ],
        },
    }


RUNNER_UID = 10002  # the runner container: holds the key, never runs tenant code
WORKER_UID = 10001  # the worker container: tenant code, the data volume
# abstract (the pod's containers share its network namespace): no socket file that tenant
# code, running as the worker's uid, could unlink or replace; the zygote serves RUNNER_UID only
ZYGOTE_SOCKET = "@tenantflow-zygote"
SECRETS_DIR = "/var/run/secrets/tenantflow"  # one read-only directory per Secret


def _container(
    name: str, uid: int, args: list[str], mounts: list[tuple[str, str, bool]]
) -> dict[str, Any]:
    return {
        "name": name,
        "args": args,
        "securityContext": container_security(uid),
        "volumeMounts": [
            {"name": vol, "mountPath": path, "readOnly": ro} for vol, path, ro in mounts
        ],
    }


def sandbox_statefulset(
    tenant: Tenant,
    settings: OperatorSettings,
    proxy_host: str | None = None,
    *,
    awake: bool = True,
) -> dict[str, Any]:
    """Two containers, so that tenant code can reach neither the key nor the runner.

    `runner` (uid 10002) mounts the HMAC key as a file and serves the operator; `worker`
    (uid 10001) runs the zygote and tenant code on the data volume. They share no volume:
    the runner reaches the zygote on an abstract socket, which serves the runner's uid only;
    without shareProcessNamespace neither sees the other's processes, and the key is in no
    environment. `awake` False: zero replicas (idle, tenancy/idle.py; its volumes stay).
    The replicas are always in what is applied, so the field stays owned by the operator's
    field manager whether it is 0 or not. The worker container's liveness
    probe asks the runner whether its zygote answers pings: a stopped or dead worker host
    is restarted by the kubelet within seconds.
    """
    box, name = tenant.spec.sandbox, tenant.metadata.name
    pod_labels = labels(name, **{"app.kubernetes.io/name": SANDBOX})
    # the runner reads them too: it masks their values in every answer
    secrets = [(f"secret-{i}", f"{SECRETS_DIR}/{s}", True) for i, s in enumerate(box.secrets)]
    runner = _container(
        "runner",
        RUNNER_UID,
        [
            *("-m", "tenantflow.sandbox.pod.runner", "--tenant", name, "--port", str(SANDBOX_PORT)),
            *("--zygote-socket", ZYGOTE_SOCKET, "--key-file", "/etc/tenantflow/key/key"),
            *(
                ("--isolation-canary", settings.isolation_canary)
                if settings.isolation_canary
                else ()
            ),
            *(("--secrets", SECRETS_DIR) if box.secrets else ()),
            *("--history-dir", HISTORY_DIR, "--history-retention", tenant.spec.history.retention),
            *("--history-max-bytes", str(int(parse_quantity(tenant.spec.history.size)))),
            *("--history-port", str(HISTORY_PORT)),
        ],
        [("key", "/etc/tenantflow/key", True), ("history", HISTORY_DIR, False), *secrets],
    )
    image = box.image or settings.sandbox_image
    runner["image"] = image
    runner["ports"] = [
        {"name": "runner", "containerPort": SANDBOX_PORT},
        {"name": "history", "containerPort": HISTORY_PORT},
    ]
    # every second: the operator sends a new tenant's first advance as soon as the pod is
    # Ready, and the default 10 s period would add up to 10 s to every sandbox start
    runner["readinessProbe"] = {
        "httpGet": {"path": "/healthz", "port": SANDBOX_PORT},
        "periodSeconds": 1,
        "failureThreshold": 3,
    }
    runner["resources"] = {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }
    worker = _container(
        "worker",
        WORKER_UID,
        [
            *("-m", "tenantflow.sandbox.pod.zygote", "--tenant", name, "--data", "/data"),
            *("--listen", ZYGOTE_SOCKET, "--runner-uid", str(RUNNER_UID)),
            *(("--secrets", SECRETS_DIR) if box.secrets else ()),
        ],
        [
            ("data", "/data", False),
            ("tmp", "/tmp", False),
            *secrets,
        ],
    )
    worker["image"] = image
    if proxy_host:  # the only way out: the tenant's egress proxy (spec.sandbox.egressHosts)
        worker["env"] = egress.proxy_env(proxy_host)
    worker["resources"] = {
        "requests": dict(box.resources.requests),
        "limits": dict(box.resources.limits),
    }
    # tolerant of a worker stalled for seconds while its cgroup reclaims memory (a step at
    # the memory limit, on a loaded node): a 1 s timeout failed twice there and restarted
    # the container, killing every advance in it; one wedged for real is still restarted
    # within ~15 s
    worker["livenessProbe"] = {
        "httpGet": {"path": "/livez/worker", "port": SANDBOX_PORT},
        "initialDelaySeconds": 5,
        "periodSeconds": 3,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "shareProcessNamespace": False,
        "securityContext": pod_security(fsGroup=WORKER_UID),
        "containers": [runner, worker],
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": PVC}},
            {"name": "history", "persistentVolumeClaim": {"claimName": HISTORY_PVC}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            {
                "name": "key",
                # root-owned, group fsGroup: readable by the runner (fsGroup is a group of
                # every container), mounted nowhere else
                "secret": {"secretName": HMAC_SECRET, "defaultMode": 0o440},
            },
            *(
                # optional: a Secret the platform has not created yet is an empty directory
                # and a clear error where tenant code reads it, not a pod that cannot start
                {"name": vol, "secret": {"secretName": s, "defaultMode": 0o440, "optional": True}}
                for (vol, _, _), s in zip(secrets, box.secrets, strict=True)
            ),
        ],
    }
    if box.runtime_class_name:
        pod_spec["runtimeClassName"] = box.runtime_class_name
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(tenant, SANDBOX),
        "spec": {
            "replicas": box.replicas if awake else 0,
            "serviceName": SANDBOX,
            "selector": {"matchLabels": {"app.kubernetes.io/name": SANDBOX}},
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        },
    }


def owned_objects(
    tenant: Tenant, settings: OperatorSettings, *, awake: bool = True
) -> list[dict[str, Any]]:
    """Everything reconciled by server-side apply, namespace first (order matters), but the
    sandbox StatefulSet: it needs the proxy Service's address, and is not applied while
    the operator refuses its image (`sandbox_statefulset`, `refusals`)."""
    return [
        namespace(tenant, settings),
        resource_quota(tenant),
        limit_range(tenant),
        *network_policies(tenant, settings),
        service_account(tenant),
        *roles(tenant),
        sandbox_service(tenant),
        *egress_proxy(tenant, settings, awake),
    ]
