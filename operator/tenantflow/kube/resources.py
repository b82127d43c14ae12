"""The fixed set of kinds the operator touches: (apiVersion, kind) -> (plural, namespaced).

A static table instead of discovery: no start-up round trips, no surprises.
"""

from __future__ import annotations

from tenantflow.vocabulary import API_VERSION, DEFINITION, INSTANCE, SCHEDULE, TENANT

RESOURCES: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "ResourceQuota"): ("resourcequotas", True),
    ("v1", "LimitRange"): ("limitranges", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "Service"): ("services", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("v1", "PersistentVolume"): ("persistentvolumes", False),
    ("storage.k8s.io/v1", "StorageClass"): ("storageclasses", False),
    ("v1", "Pod"): ("pods", True),
    ("v1", "Event"): ("events", True),
    ("discovery.k8s.io/v1", "EndpointSlice"): ("endpointslices", True),
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "ControllerRevision"): ("controllerrevisions", True),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("networkpolicies", True),
    ("coordination.k8s.io/v1", "Lease"): ("leases", True),
    ("authentication.k8s.io/v1", "SelfSubjectReview"): ("selfsubjectreviews", False),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): ("selfsubjectaccessreviews", False),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
    (API_VERSION, TENANT): ("tenants", False),
    (API_VERSION, DEFINITION): ("workflowdefinitions", True),
    (API_VERSION, INSTANCE): ("workflowinstances", True),
    (API_VERSION, SCHEDULE): ("workflowschedules", True),
}


def path(
    api_version: str,
    kind: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """REST path, e.g. /apis/apps/v1/namespaces/ns/statefulsets/x/status."""
    plural, namespaced = RESOURCES[(api_version, kind)]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespaced and namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    if name:
        base += f"/{name}"
    if subresource:
        base += f"/{subresource}"
    return base
