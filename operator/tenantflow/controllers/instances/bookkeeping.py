"""What the controller learns from every observed phase: the instances gauge, admission's
slots (a freed slot wakes the next queued instance) and Tenant.status.usage, counted as
phases are observed, never by listing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tenantflow.observability import metrics
from tenantflow.supervisor.admission import DELETED, LENT, Admission
from tenantflow.supervisor.usage import UsageTracker


@dataclass
class PhaseBook:
    admission: Admission
    wake: Callable[[str], None]  # an instance that may start now
    usage_changed: Callable[[str], None]  # a tenant whose usage counts moved
    usage: UsageTracker = field(default_factory=UsageTracker)
    phases: dict[str, tuple[str, str]] = field(default_factory=dict)  # key: (tenant, phase)

    def track(self, key: str, tenant: str | None, phase: str | None, lent: bool = False) -> None:
        """`key` observed in `phase` (None and None: it is gone); `lent`: its concurrency
        slot is lent to the children it awaits."""
        old = self.phases.pop(key, None)
        if old:
            metrics.INSTANCES.labels(tenant=old[0], phase=old[1]).dec()
        if tenant and phase:
            self.phases[key] = (tenant, phase)
            metrics.INSTANCES.labels(tenant=tenant, phase=phase).inc()
        owner = tenant or (old[0] if old else None)
        if owner is None:
            return
        self.usage.phase_changed(owner, old[1] if old else None, phase if tenant else None)
        seen = (LENT if lent else phase) if tenant else DELETED
        for woken in self.admission.observe(owner, key, seen):
            self.wake(woken)
        metrics.QUEUE_DEPTH.labels(tenant=owner).set(self.admission.queue_depth(owner))
        if (old[1] if old else None) != phase:
            self.usage_changed(owner)

    def phase_of(self, key: str) -> str | None:
        """`key`'s phase as last observed (None: not tracked)."""
        seen = self.phases.get(key)
        return seen[1] if seen else None

    def started(self, tenant: str) -> None:
        metrics.INSTANCE_STARTS.labels(tenant=tenant).inc()
        self.usage.started(tenant)

    def storage_measured(self, tenant: str, size: int) -> None:
        if self.usage.storage_measured(tenant, size):
            self.usage_changed(tenant)

    def tenant_usage(self, tenant: str) -> dict[str, int]:
        """Tenant.status.usage."""
        return self.usage.report(tenant, self.admission.queue_depth(tenant))
