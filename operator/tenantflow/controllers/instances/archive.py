"""A finished instance leaves the control plane for its tenant's history (issue 34):
archived first, deleted after.

The CR is deleted only once the tenant's runner answered that the record is stored (its
store syncs each write), so a crash between the two archives it again (an archive is
idempotent by uid) and never loses it. A store that is full, unreachable or missing
keeps the CR where it is: an `Archived=False` condition naming the cause, a Warning
Event, `tenantflow_archives_total{result="failed"}`, and a retry after ARCHIVE_RETRY.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tenantflow.controllers.instances.drive import Drive
from tenantflow.controllers.instances.failures import SANDBOX_WAIT_RECHECK
from tenantflow.observability import metrics
from tenantflow.observability.logging import get_logger
from tenantflow.sandbox.client.transport import Endpoint, SandboxUnavailable
from tenantflow.tenancy.idle import WAITING_FOR_SANDBOX
from tenantflow.vocabulary import GROUP, ConditionType

log = get_logger("tenantflow.instance")
ARCHIVE_RETRY = 60.0  # seconds before an archive that failed is tried again
# labels of ours or of the platform's tooling: not the tenant's search attributes
NOT_ATTRIBUTES = (f"{GROUP}/", "app.kubernetes.io/", "kubernetes.io/")


class Runners(Protocol):
    async def endpoint(self, tenant: str) -> Endpoint: ...


class HistoryTransport(Protocol):
    async def history(self, ep: Endpoint, request: dict[str, Any]) -> dict[str, Any]: ...


@dataclass
class Archiver:
    sandboxes: Runners
    transport: HistoryTransport

    async def keep(self, d: Drive) -> bool:
        """Archive `d`'s instance; False (and why, on `d`) when it is not stored yet."""
        tenant = d.view.tenant or ""
        try:
            endpoint = await self.sandboxes.endpoint(tenant)
            await self.transport.history(endpoint, {"op": "archive", "instance": record(d)})
        except SandboxUnavailable as exc:
            # an idle tenant's sandbox is being started for it: a wait, not a failure
            starting = exc.reason == WAITING_FOR_SANDBOX
            if not starting:
                metrics.ARCHIVES.labels(tenant=tenant, result="failed").inc()
                log.warning("archive failed", instance=d.key, reason=exc.reason, error=str(exc))
            d.condition(
                ConditionType.ARCHIVED,
                False,
                exc.reason,
                f"not archived into the tenant's history yet, so not deleted: {exc}"[:1024],
                warn=not starting,
            )
            d.later(SANDBOX_WAIT_RECHECK if starting else ARCHIVE_RETRY)
            return False
        metrics.ARCHIVES.labels(tenant=tenant, result="archived").inc()
        return True


def record(d: Drive) -> dict[str, Any]:
    """The archive record of a finished instance: what `tenantflow get` showed of it."""
    meta, st = d.body["metadata"], d.view.status
    labels = meta.get("labels") or {}
    return {
        "uid": d.view.uid,
        "name": d.view.name,
        "definition": d.view.workflow,
        "phase": st.get("phase") or "",
        "createdAt": d.view.created,
        "finishedAt": st.get("finishedAt") or d.view.created,
        "attributes": {k: v for k, v in labels.items() if not k.startswith(NOT_ATTRIBUTES)},
        "record": {
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "creationTimestamp", "labels", "annotations")
                if k in meta
            },
            "spec": d.body.get("spec") or {},
            "status": st,
        },
    }
