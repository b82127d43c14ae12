"""The UI's queries (issue 36.7): the instance page lists status.queries, and a query is
the instance read as the user, then asked of the sandbox by its uid."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import pytest
from aiohttp.test_utils import make_mocked_request

from tenantflow.kube.client import Kube
from tenantflow.kube.queries import QueryFailed
from tenantflow.ui import server, views
from tenantflow.vocabulary import API_VERSION, INSTANCE
from tenantflow_dev import fake_kube

pytestmark = pytest.mark.unit
NS = "tenant-acme"


async def test_a_query_from_the_instance_page() -> None:
    fake = fake_kube.FakeKube()
    inst = {
        "apiVersion": API_VERSION,
        "kind": INSTANCE,
        "metadata": {"name": "build-1", "namespace": NS},
        "spec": {"workflowRef": {"name": "ci"}},
        "status": {"phase": "Waiting", "queries": ["progress"]},
    }
    fake.put(inst)
    assert views.instance_detail(inst, [], dt.datetime.now(dt.UTC))["queries"] == ["progress"]

    def sandbox(uid: str, name: str, args: Any) -> tuple[int, dict[str, Any]]:
        if name != "progress":
            return 404, {"error": {"name": "UnknownQuery", "message": "registered: progress"}}
        return 200, {"query": name, "value": {"uid": uid, "args": args}, "asOf": {"steps": 1}}

    fake.queries[NS] = sandbox
    kube = cast(Kube, fake)

    def asked(query: str, args: str = "") -> Any:
        url = f"/api/instances/{NS}/build-1/queries/{query}" + (f"?args={args}" if args else "")
        match = {"ns": NS, "name": "build-1", "query": query}
        return server._query(make_mocked_request("GET", url, match_info=match), kube)

    got = await asked("progress", "[1]")
    assert got["value"] == {"uid": "uid-build-1", "args": [1]}
    with pytest.raises(QueryFailed, match="UnknownQuery"):
        await asked("nope")
