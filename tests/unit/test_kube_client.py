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
