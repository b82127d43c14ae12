"""What the controller learns from every observed phase: the instances gauge, admission's
slots (a freed slot wakes the next queued instance) and Tenant.status.usage, counted as
phases are observed, never by listing; and the wake-ups of waiting instances, by tenant
(a sandbox scaled to zero starts ahead of its tenant's next one, tenancy/idle.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from tenantflow.observability import metrics
from tenantflow.supervisor.admission import DELETED, LENT, Admission
from tenantflow.supervisor.usage import UsageTracker
from tenantflow.vocabulary import ObjectKey, Phase


@dataclass
class PhaseBook:
    admission: Admission
    wake: Callable[[ObjectKey], None]  # an instance that may start now
    usage_changed: Callable[[str], None]  # a tenant whose usage counts moved
    usage: UsageTracker = field(default_factory=UsageTracker)
    phases: dict[ObjectKey, tuple[str, str]] = field(default_factory=dict)  # key: (tenant, phase)
    # tenant -> {key: nextWakeAt} of its Waiting instances
    wakes: dict[str, dict[ObjectKey, dt.datetime]] = field(default_factory=dict)

    def track(
        self, key: ObjectKey, tenant: str | None, phase: str | None, lent: bool = False
    ) -> None:
        """`key` observed in `phase` (None and None: it is gone); `lent`: its concurrency
        slot is lent to the children it awaits."""
        old = self.phases.pop(key, None)
        if old and (phase != Phase.WAITING or tenant != old[0]):
            self._unwake(old[0], key)  # no longer waiting: its wake-up is not a timer now
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

    def wakes_at(self, key: ObjectKey, tenant: str | None, when: dt.datetime | None) -> None:
        """`key` (Waiting) runs again at `when` (None: no timer)."""
        if tenant is None:
            return
        if when is None:
            self._unwake(tenant, key)
        else:
            self.wakes.setdefault(tenant, {})[key] = when

    def _unwake(self, tenant: str, key: ObjectKey) -> None:
        found = self.wakes.get(tenant)
        if found is not None:
            found.pop(key, None)
            if not found:
                del self.wakes[tenant]

    def next_wake(self, tenant: str, not_before: dt.datetime) -> dt.datetime | None:
        """The tenant's earliest known wake-up at or after `not_before`."""
        kept = [w for w in (self.wakes.get(tenant) or {}).values() if w >= not_before]
        return min(kept) if kept else None

    def phase_of(self, key: ObjectKey) -> str | None:
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
