"""Kubernetes Events on our objects, posted directly (works from any task or context)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import aiohttp

from tenantflow.kube.client import ApiException, Kube
from tenantflow.observability.logging import get_logger

log = get_logger("tenantflow.events")
COMPONENT = "tenantflow-operator"


async def post(kube: Kube, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """Record an Event about `obj`; failures are logged, never raised (events are advisory)."""
    meta = obj["metadata"]
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
