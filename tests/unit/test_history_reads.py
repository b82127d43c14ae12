"""People's read-only history API (issue 34), served by the runner on its own port for the
API server's service proxy: search, one instance, its log lines; GET only; a bad query
refused naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tenantflow.sandbox.pod.history_api import read_app
from tenantflow.storage.history import Archived, History

pytestmark = pytest.mark.unit


@pytest.fixture
def h(tmp_path: Path) -> History:
    h = History(tmp_path)
    for n, repo in enumerate(["acme-web", "acme-api", "acme-web"]):
        h.archive(
            Archived(
                uid=f"u{n}",
                name=f"build-{n}",
                definition="ci",
                phase="Errored" if n == 2 else "Complete",
                created_at=f"2030-01-01T00:0{n}:00Z",
                finished_at=f"2030-01-01T01:0{n}:00Z",
                attributes={"repo": repo},
                record={"status": {"output": n}},
            ),
            "2030-01-02T00:00:00Z",
        )
    h.append_logs("u0", "2030-01-01T00:00:01Z", [{"message": "hi", "step": "s", "attempt": 1}])
    return h


async def get(h: History, path: str, method: str = "GET") -> tuple[int, Any]:
    async with TestClient(TestServer(read_app(h))) as client:
        resp = await client.request(method, path)
        return resp.status, await resp.json(content_type=None) if resp.status != 405 else None


async def test_search_filters_by_attribute_and_phase(h: History) -> None:
    status, page = await get(h, "/v1/instances?attr=repo=acme-web&phase=Complete")
    assert status == 200 and [i["name"] for i in page["items"]] == ["build-0"]


async def test_pages_follow_their_cursor(h: History) -> None:
    _, first = await get(h, "/v1/instances?limit=2")
    assert [i["name"] for i in first["items"]] == ["build-2", "build-1"]
    cursor = ",".join(first["next"])
    _, rest = await get(h, f"/v1/instances?limit=2&before={cursor}")
    assert [i["name"] for i in rest["items"]] == ["build-0"] and rest["next"] is None


async def test_one_instance_and_its_lines(h: History) -> None:
    _, one = await get(h, "/v1/instances/build-1")
    assert one["instance"]["record"] == {"status": {"output": 1}}
    _, lines = await get(h, "/v1/logs/u0?step=s&attempt=1")
    assert [g["message"] for g in lines["lines"]] == ["hi"]


@pytest.mark.parametrize(
    ("path", "field"),
    [("/v1/logs/u0?limit=many", "limit"), ("/v1/instances?before=nocomma", "before")],
)
async def test_a_bad_query_is_refused_naming_the_field(h: History, path: str, field: str) -> None:
    status, body = await get(h, path)
    assert status == 400 and field in body["error"]


async def test_nothing_but_reads(h: History) -> None:
    status, _ = await get(h, "/v1/instances", method="POST")
    assert status == 405
