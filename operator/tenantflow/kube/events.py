"""Kubernetes Events on our objects, posted directly (works from any task or context)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import aiohttp

from tenantflow.kube.client import ApiException, KubeApi
from tenantflow.observability.logging import get_logger
from tenantflow.supervisor.token_bucket import TokenBucket

log = get_logger("tenantflow.events")
COMPONENT = "tenantflow-operator"
NORMAL_RATE, NORMAL_BURST = 5.0, 50.0
_budgets: dict[str, TokenBucket] = {}


def _normal_budget(namespace: str) -> TokenBucket:
    bucket = _budgets.get(namespace)
    if bucket is None:
        bucket = _budgets[namespace] = TokenBucket(NORMAL_RATE, NORMAL_BURST)
    return bucket


async def post(kube: KubeApi, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """Record an Event about `obj`; failures are logged, never raised (events are advisory).

    Warnings are always posted. Normal events are limited per namespace (a burst of 50,
    then 5/s), like client-go's event spam filter: at hundreds of completions a second an
    Event per instance would double the API server's writes; status and metrics carry it.
    """
    meta = obj["metadata"]
    if type_ == "Normal" and not _normal_budget(meta.get("namespace") or "").try_take():
        log.debug("normal event not posted (budget)", reason=reason, object=meta["name"])
        return
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    namespace = meta.get("namespace") or "default"
    event = {
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
    try:
        await kube.create(event)
    except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
        status = getattr(exc, "status", None)
        log.warning("could not post event", reason=reason, status=status, object=meta["name"])
