"""The per-tenant budget of revisions written at runtime (plans a running workflow hands
to `step.child(..., source=)`): `spec.limits.maxRuntimeRevisionsPerHour` tokens, refilled
evenly over the hour, one spent by each new revision (a source a definition holds already
costs nothing). 0 turns such writes off for the tenant.

Kept in memory by the replica that holds the tenant's shard, as the start-rate and event
buckets are: a restarted operator, or one that takes the shard over, starts it full.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tenantflow.durations import format_duration
from tenantflow.supervisor.token_bucket import TokenBucket

HOUR = 3600.0
SETTING = "spec.limits.maxRuntimeRevisionsPerHour"


@dataclass
class RevisionBudget:
    clock: Callable[[], float] = time.monotonic
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def take(self, tenant: str, per_hour: int) -> str | None:
        """Spend one of the tenant's revisions: None when it may write one now, else why
        not (naming the setting, and when the next one may be written)."""
        if per_hour <= 0:
            self.buckets.pop(tenant, None)
            return f"the Tenant's {SETTING} is 0: this tenant may not write revisions at runtime"
        rate, burst = per_hour / HOUR, float(per_hour)
        bucket = self.buckets.get(tenant)
        if bucket is None:
            bucket = self.buckets[tenant] = TokenBucket(rate, burst, clock=self.clock)
        elif (bucket.rate, bucket.burst) != (rate, burst):
            bucket.reconfigure(rate, burst)
        if bucket.try_take():
            return None
        return (
            f"this tenant wrote its {per_hour} revisions of the last hour at runtime "
            f"({SETTING}); the next may be written in "
            f"{format_duration(max(1.0, bucket.wait_time()))}: catch the StepError and "
            "try again later under another step name, or raise the limit on the Tenant"
        )
