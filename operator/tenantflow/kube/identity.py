"""Who the API server takes a client for (a SelfSubjectReview): the CLI records it as who
asked for a reset, the web UI shows it."""

from __future__ import annotations

from typing import Any

from tenantflow.kube.client import KubeApi


async def user_info(kube: KubeApi) -> dict[str, Any]:
    """The client's userInfo: username, groups, ..."""
    review = await kube.create(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {}}
    )
    info: dict[str, Any] = (review.get("status") or {}).get("userInfo") or {}
    return info
