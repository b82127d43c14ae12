"""Pure parts of the API client: which failures are retried."""

from __future__ import annotations

import json

from tenantflow.kube.client import _quota_conflict


def test_only_quota_conflicts_are_retryable_409s() -> None:
    quota = {"reason": "Conflict", "details": {"name": "tenant-quota", "kind": "resourcequotas"}}
    mine = {"reason": "Conflict", "details": {"name": "i-1", "kind": "workflowinstances"}}
    assert _quota_conflict(409, json.dumps(quota).encode())
    assert not _quota_conflict(409, json.dumps(mine).encode())
    assert not _quota_conflict(409, b"not json")
    assert not _quota_conflict(500, json.dumps(quota).encode())


def test_an_api_error_says_the_servers_message_else_its_body_else_its_status() -> None:
    from kubernetes_asyncio.client.exceptions import ApiException

    from tenantflow.kube.client import message

    status = ApiException(status=422, reason="Unprocessable Entity")
    status.body = '{"kind": "Status", "message": "spec.params: too many properties"}'
    bare = ApiException(status=503, reason="Service Unavailable")
    text = ApiException(status=502, reason="Bad Gateway")
    text.body = "upstream connect error"
    assert message(status) == "spec.params: too many properties"
    assert message(bare) == "503 Service Unavailable"  # said "None" before
    assert message(text) == "upstream connect error"
