"""Queries (issue 36.7), asked as the caller through the API server: the sandbox
Service's read-only `history` port behind `services/sandbox:history/proxy`, as history
reads are, so the API server's RBAC decides who may ask (the tenant's viewer and editor
roles, who may read its instances). One asker for the CLI and the web UI.

The runner answers from the journal it kept from the instance's last advance, found by
the instance's uid: the caller reads the instance first (as itself), and sends nothing
of the instance but that uid."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from tenantflow.errors import TenantflowError
from tenantflow.kube.client import ApiException, Kube
from tenantflow.vocabulary import HISTORY_PROXY


class QueryFailed(TenantflowError):
    """The sandbox answered, with no value: `name` says why (UnknownQuery, QueryFailed,
    QueryResultTooLarge, BadQueryArguments, InstanceUnknown, ...), `status` its HTTP
    status, `registered` the instance's query names (when known)."""

    def __init__(self, status: int, error: dict[str, Any], registered: list[str]) -> None:
        self.status = status
        self.name = str(error.get("name") or "QueryFailed")
        self.traceback = error.get("traceback") if isinstance(error.get("traceback"), str) else None
        self.registered = registered
        super().__init__(f"{self.name}: {error.get('message') or ''}".rstrip(": "))


async def ask(
    kube: Kube, namespace: str, uid: str, name: str, args: list[Any] | None = None
) -> dict[str, Any]:
    """The query's answer ({query, value, registered, asOf}); QueryFailed when the sandbox
    answered without a value, ApiException when the API server refused (403: not the
    caller's to ask) or no sandbox answered (503)."""
    url = (
        f"/api/v1/namespaces/{namespace}/services/{HISTORY_PROXY[0]}/proxy"
        f"/v1/queries/{quote(uid, safe='')}/{quote(name, safe='')}"
    )
    query = [("args", json.dumps(args, separators=(",", ":")))] if args is not None else None
    try:
        return await kube.request("GET", url, query=query)
    except ApiException as exc:
        body = _json(exc.body)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):  # the runner's own answer, passed on by the proxy
            registered = body.get("registered") if isinstance(body, dict) else None
            raise QueryFailed(
                exc.status or 500,
                error,
                [str(n) for n in registered] if isinstance(registered, list) else [],
            ) from None
        raise


def _json(body: Any) -> Any:
    try:
        return json.loads(body) if isinstance(body, str | bytes) else None
    except ValueError:
        return None
