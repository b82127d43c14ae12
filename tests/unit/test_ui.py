"""The web UI's pure parts: what each view shows (timeline bars, inbox, side-by-side diff,
rows) and who a request acts as (the printed token, the Host check, a bearer token)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from tenantflow.durations import parse_time
from tenantflow.kube.client import Kube
from tenantflow.lifecycle.source import Code
from tenantflow.storage.history import Archived, History
from tenantflow.ui import server, views
from tenantflow.ui.access import TOKEN_HEADER, Access
from tenantflow_dev import fake_kube

pytestmark = pytest.mark.unit
NOW = parse_time("2030-01-01T00:10:00Z")


def test_the_timeline_draws_each_step_as_what_it_is() -> None:
    steps = [
        {
            "name": "build",
            "kind": "do",
            "state": "Complete",
            "attempts": 3,
            "startedAt": "2030-01-01T00:00:00Z",
            "finishedAt": "2030-01-01T00:01:00Z",
        },
        {
            "name": "deploy",
            "kind": "do",
            "state": "Retrying",
            "attempts": 1,
            "startedAt": "2030-01-01T00:01:00Z",
            "nextAttemptAt": "2030-01-01T00:12:00Z",
            "error": {"name": "ValueError", "message": "registry down"},
        },
        {
            "name": "approval",
            "kind": "event",
            "state": "Waiting",
            "startedAt": "2030-01-01T00:02:00Z",
            "until": "2030-01-02T00:02:00Z",
            "eventType": "approved",
        },
    ]
    t = views.timeline(steps, NOW)
    build, deploy, approval = t["bars"]
    assert (build["attempts"], build["open"], build["waitUntil"]) == (3, False, None)
    assert deploy["open"] and deploy["end"] == "2030-01-01T00:10:00Z"  # runs until now
    assert deploy["waitUntil"] == "2030-01-01T00:12:00Z"  # the backoff, drawn as a wait
    assert deploy["error"]["message"] == "registry down"
    assert approval["waitUntil"] == "2030-01-02T00:02:00Z" and approval["eventType"] == "approved"
    assert (t["from"], t["to"]) == ("2030-01-01T00:00:00Z", "2030-01-02T00:02:00Z")


def test_the_inbox_says_when_each_event_arrived_and_which_step_took_it() -> None:
    inst: dict[str, Any] = {
        "spec": {"events": [{"type": "go", "payload": 1}, {"type": "go", "payload": 2}]},
        "status": {
            "eventsSeen": ["2030-01-01T00:00:05Z"],
            "steps": [{"name": "wait-1", "eventIndex": 0}],
        },
    }
    first, second = views.inbox(inst)
    assert (first["consumedBy"], first["arrived"]) == ("wait-1", "2030-01-01T00:00:05Z")
    assert (second["consumedBy"], second["arrived"], second["payload"]) == (None, None, 2)


def test_a_side_by_side_diff_aligns_changed_added_and_removed_lines_per_file() -> None:
    a = Code({"main.py": "a\nb\nc\n", "old.py": "x\n"}, "main")
    b = Code({"main.py": "a\nB\nc\nd\n", "new.py": "y\n"}, "main")
    files = {f["file"]: f for f in views.side_by_side(a, b)}
    assert {n: f["status"] for n, f in files.items()} == {
        "main.py": "changed",
        "new.py": "added",
        "old.py": "removed",
    }
    rows = files["main.py"]["rows"]
    assert [(r["op"], r["left"], r["right"]) for r in rows] == [
        ("equal", "a", "a"),
        ("replace", "b", "B"),
        ("equal", "c", "c"),
        ("insert", None, "d"),
    ]
    assert (rows[3]["leftNo"], rows[3]["rightNo"]) == (None, 4)


def test_a_tenant_row_has_usage_against_limits_and_sandbox_health() -> None:
    row = views.tenant_row(
        {
            "metadata": {"name": "acme"},
            "spec": {"limits": {"maxConcurrentInstances": 10, "storage": "1Gi"}},
            "status": {
                "phase": "Ready",
                "usage": {"runningInstances": 4, "queuedInstances": 2},
                "conditions": [
                    {"type": "SandboxReady", "status": "False", "message": "0/1 pods ready"}
                ],
            },
        }
    )
    assert (row["namespace"], row["running"], row["maxConcurrent"], row["queued"]) == (
        "tenant-acme",
        4,
        10,
        2,
    )
    assert row["sandboxReady"] is False and row["sandboxMessage"] == "0/1 pods ready"


# ---------------------------------------------------------------------- access
class FakeKube:
    def __init__(self, token: str = "") -> None:
        self.token = token

    def as_user(self, token: str) -> FakeKube:
        return FakeKube(token)


def request(headers: dict[str, str]) -> web.Request:
    return make_mocked_request("GET", "/api/tenants", headers=headers)


def test_local_mode_needs_the_printed_token_and_its_own_host() -> None:
    access = Access(cast(Kube, FakeKube()), hosts=frozenset({"127.0.0.1:8090"}))
    ok = {"Host": "127.0.0.1:8090", TOKEN_HEADER: access.token}
    assert access.kube_for(request(ok)) is access.kube
    with pytest.raises(web.HTTPUnauthorized):  # a page elsewhere cannot send the token
        access.kube_for(request({"Host": "127.0.0.1:8090"}))
    with pytest.raises(web.HTTPUnauthorized):
        access.kube_for(
            request(
                {
                    **ok,
                    TOKEN_HEADER: access.token[:-1] + ("y" if access.token.endswith("x") else "x"),
                }
            )
        )
    with pytest.raises(web.HTTPForbidden):  # DNS rebinding: another name for this address
        access.kube_for(request({**ok, "Host": "attacker.example:8090"}))


def test_client_mode_acts_with_each_requests_own_token_and_nothing_else() -> None:
    access = Access(cast(Kube, FakeKube("the-servers-own")), mode="client")
    with pytest.raises(web.HTTPUnauthorized):
        access.kube_for(request({}))
    with pytest.raises(web.HTTPUnauthorized):
        access.kube_for(request({TOKEN_HEADER: access.token}))  # the local token is not one
    alice = cast(FakeKube, access.kube_for(request({"Authorization": "Bearer alice-token"})))
    bob = cast(FakeKube, access.kube_for(request({"Authorization": "Bearer bob-token"})))
    assert (alice.token, bob.token) == ("alice-token", "bob-token")
    again = access.kube_for(request({"Authorization": "Bearer alice-token"}))
    assert again is cast(Kube, alice)  # one client per token, its connections reused


def test_rows_of_instances_carry_what_the_list_filters_on() -> None:
    row = views.instance_row(
        {
            "metadata": {"namespace": "tenant-a", "name": "i", "creationTimestamp": "2030"},
            "spec": {"workflowRef": {"name": "ci"}},
            "status": {"phase": "Errored", "revision": 3, "error": {"name": "ValueError"}},
        }
    )
    assert (row["definition"], row["revision"], row["phase"], row["error"]) == (
        "ci",
        3,
        "Errored",
        "ValueError",
    )
    assert views.instance_row({"metadata": {"namespace": "n", "name": "q"}})["phase"] == "Queued"


async def test_a_namespaces_list_and_an_instance_page_reach_into_the_tenants_history(
    tmp_path: Path,
) -> None:
    """Issue 34.2: the UI shows archived instances beside live ones, filtered alike, and an
    archived instance's page from its record; an unreadable history is said, not fatal."""
    fake, ns = fake_kube.FakeKube(), "tenant-acme"
    kube = cast(Kube, fake)
    history = fake.histories.setdefault(ns, History(tmp_path / "history"))
    history.archive(
        Archived(
            "uid-old",
            "old",
            "ci",
            "Complete",
            "2030-01-01T00:00:00Z",
            "2030-01-01T00:01:00Z",
            record={"metadata": {"name": "old", "uid": "uid-old"}, "status": {"output": 1}},
        ),
        "2030-01-01T00:02:00Z",
    )
    page = {"items": [], "continue": "", "total": 0}
    request = make_mocked_request("GET", f"/api/instances?namespace={ns}&phase=Complete")
    listed = await server._with_archived(request, kube, ns, page, 50)
    assert [(r["name"], r.get("archived")) for r in listed["items"]] == [("old", True)]
    inst, archived = await server._live_or_archived(kube, ns, "old")
    assert archived and inst["status"]["output"] == 1
    fake.histories.clear()
    unread = await server._with_archived(request, kube, ns, page, 50)
    assert "archived instances not shown" in unread["archivedUnread"]
