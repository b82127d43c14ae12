"""Whether a new tenant's sandbox pod may be created yet: its volumes bound, or of a class
that binds them for the pod.

Why: a pod created while its claims are Pending is marked unschedulable ("unbound
immediate PersistentVolumeClaims"), and kube-scheduler looks at it again when the claim
changes, which under a burst of a thousand tenants' claims can be its 5-minute flush
(bench/README.md, tenants at scale). So the StatefulSet is created once every claim of
an Immediate class is Bound. A WaitForFirstConsumer class (most clouds' default) binds
the claim only for a scheduled pod: waiting for it there would never end, so the pod is
created at once. The binding mode of a class never changes (the field is immutable), so
each is read once. A class that cannot be read (no RBAC for it, not found, no class at
all) does not hold the pod back: the old behaviour, never a deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tenantflow.kube.client import ApiException, KubeApi
from tenantflow.observability.logging import get_logger
from tenantflow.tenancy import manifests

log = get_logger("tenantflow.tenant")

IMMEDIATE = "Immediate"  # StorageClass.volumeBindingMode's default


@dataclass
class StorageClasses:
    """The binding mode of each StorageClass looked at (None: not readable), and the
    namespaces whose sandbox this process applied (never held back again)."""

    kube: KubeApi
    modes: dict[str, str | None] = field(default_factory=dict)
    applied: set[str] = field(default_factory=set)

    async def binding_mode(self, name: str) -> str | None:
        if name not in self.modes:
            try:
                found = await self.kube.get("storage.k8s.io/v1", "StorageClass", name)
            except ApiException as exc:  # 403: the chart's RBAC predates this check
                log.info("storage class not readable", storage_class=name, status=exc.status)
                found = None
            self.modes[name] = (
                None if found is None else str(found.get("volumeBindingMode") or IMMEDIATE)
            )
        return self.modes[name]

    async def unbound(self, namespace: str) -> list[str]:
        """The tenant's claims the scheduler would refuse a pod for now: Pending, of a
        class that binds them Immediately."""
        waiting = []
        for name in (manifests.PVC, manifests.HISTORY_PVC):
            claim = await self.kube.get("v1", "PersistentVolumeClaim", name, namespace)
            if claim is None or (claim.get("status") or {}).get("phase") == "Bound":
                continue
            cls = (claim.get("spec") or {}).get("storageClassName")
            if cls and await self.binding_mode(cls) == IMMEDIATE:
                waiting.append(name)
        return waiting
