"""A tenant's history, read as the caller through the API server (issue 34): the sandbox
Service's read-only `history` port behind `services/sandbox:history/proxy`, so the API
server's RBAC decides who may read (the tenant's viewer and editor roles may). One
reader for the CLI and the web UI."""

from __future__ import annotations

from typing import Any

from tenantflow.kube.client import Kube
from tenantflow.vocabulary import HISTORY_PROXY

LOG_PAGE = 1000  # log lines per read of `/v1/logs/UID` (the runner allows up to 10,000)


async def read(
    kube: Kube, namespace: str, path: str, query: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """One GET of the tenant's history API (`/v1/instances`, `/v1/instances/NAME`,
    `/v1/logs/UID`); ApiException as the API server answered (403: not the caller's to
    read; 503: no sandbox running to answer)."""
    url = f"/api/v1/namespaces/{namespace}/services/{HISTORY_PROXY[0]}/proxy{path}"
    return await kube.request("GET", url, query=query)
