"""Kubernetes Events on our objects, posted directly (works from any task or context)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tenantflow.kube.client import ApiException, KubeApi
from tenantflow.observability.logging import get_logger
from tenantflow.supervisor.token_bucket import TokenBucket

log = get_logger("tenantflow.events")
COMPONENT = "tenantflow-operator"
NORMAL_RATE, NORMAL_BURST = 5.0, 50.0


@dataclass
class EventRecorder:
    """Posts Events about our objects (client-go's EventRecorder): one per operator, built
    in the composition root and handed to every controller, so the per-namespace budget of
    Normal Events is the operator's, not a module's."""

    kube: KubeApi
    normal_rate: float = NORMAL_RATE
    normal_burst: float = NORMAL_BURST
    _budgets: dict[str, TokenBucket] = field(default_factory=dict)

    def _normal_budget(self, namespace: str) -> TokenBucket:
        bucket = self._budgets.get(namespace)
        if bucket is None:
            bucket = self._budgets[namespace] = TokenBucket(self.normal_rate, self.normal_burst)
        return bucket

    async def post(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Record an Event about `obj`; failures are logged, never raised (Events are
        advisory).

        Warnings are always posted. Normal events are limited per namespace (a burst of 50,
        then 5/s), like client-go's event spam filter: at hundreds of completions a second
        an Event per instance would double the API server's writes; status and metrics
        carry it."""
        meta = obj["metadata"]
        if type_ == "Normal" and not self._normal_budget(meta.get("namespace") or "").try_take():
            log.debug("normal event not posted (budget)", reason=reason, object=meta["name"])
            return
        try:
            await self.kube.create(_event(obj, type_, reason, message))
        except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
            status = getattr(exc, "status", None)
            log.warning("could not post event", reason=reason, status=status, object=meta["name"])


def _event(obj: dict[str, Any], type_: str, reason: str, message: str) -> dict[str, Any]:
    meta = obj["metadata"]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    namespace = meta.get("namespace") or "default"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:12]}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": type_,
        "reason": reason[:128],
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
