"""Whether a new tenant's sandbox pod may be created yet: its volumes bound, or of a class
that binds them for the pod.

Why: a pod created while its claims are Pending is marked unschedulable ("unbound
immediate PersistentVolumeClaims"), and kube-scheduler looks at it again when the claim
changes, which under a burst of a thousand tenants' claims can be its 5-minute flush
(bench/README.md, tenants at scale). So the StatefulSet is created once every claim of
an Immediate class is Bound. A WaitForFirstConsumer class (most clouds' default) binds
the claim only for a scheduled pod: waiting for it there would never end, so the pod is
created at once. The binding mode of a class never changes (the field is immutable), so
a class read once is known for good. A class that cannot be read (no RBAC for it, not
found, no class at all) does not hold the pod back: the old behaviour, never a deadlock;
it is read again after UNREADABLE_RETRY, so a chart upgrade that grants the read, or a
class created later, takes effect without restarting the operator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tenantflow.kube.client import ApiException, KubeApi
from tenantflow.observability.logging import get_logger
from tenantflow.tenancy import manifests

log = get_logger("tenantflow.tenant")

IMMEDIATE = "Immediate"  # StorageClass.volumeBindingMode's default
UNREADABLE_RETRY = 300.0  # seconds before a class that could not be read is read again


@dataclass
class StorageClasses:
    """The binding mode of each StorageClass read, when each unreadable one was last tried
    (monotonic), and the namespaces whose sandbox this process applied (never held back
    again)."""

    kube: KubeApi
    modes: dict[str, str] = field(default_factory=dict)
    unreadable: dict[str, float] = field(default_factory=dict)
    applied: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.monotonic

    async def binding_mode(self, name: str) -> str | None:
        """The class's volumeBindingMode; None while it cannot be read."""
        if name in self.modes:
            return self.modes[name]
        tried = self.unreadable.get(name)
        if tried is not None and self.clock() - tried < UNREADABLE_RETRY:
            return None
        try:
            found = await self.kube.get("storage.k8s.io/v1", "StorageClass", name)
        except ApiException as exc:  # 403: the chart's RBAC predates this check
            log.info("storage class not readable", storage_class=name, status=exc.status)
            found = None
        if found is None:
            self.unreadable[name] = self.clock()
            return None
        self.unreadable.pop(name, None)
        self.modes[name] = str(found.get("volumeBindingMode") or IMMEDIATE)
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
