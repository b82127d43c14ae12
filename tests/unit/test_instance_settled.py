"""InstanceController.settled: which watched states skip a drive (and its GET)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from tenantflow.controllers.instances import InstanceController, InstanceSettings
from tenantflow.controllers.instances.view import InstanceView
from tenantflow.controllers.revision_cache import RevisionCache
from tenantflow_dev.fake_kube import FakeKube


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _inst(status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    meta = {"name": "i", "namespace": "tenant-a"}
    return {"metadata": meta, "spec": {"workflowRef": {"name": "w"}, **spec}, "status": status}


def _settled(inst: dict[str, Any], busy: bool = False) -> tuple[bool, dt.datetime | None]:
    async def main() -> tuple[bool, dt.datetime | None]:
        controller = InstanceController(
            FakeKube(),
            None,  # type: ignore[arg-type]
            RevisionCache(),
            usage_changed=lambda tenant: None,
            settings=InstanceSettings(finished_ttl=3600),
        )
        if busy:
            controller.queue.request("tenant-a/i")
        settled = controller.settled(InstanceView.decode(inst))
        return settled, controller.queue._due.get("tenant-a/i")

    return asyncio.run(main())


def _waiting(now: dt.datetime) -> dict[str, Any]:
    """Taken when the test runs, not at import: a collection long before it (the cluster
    tests run first) would make the wake due."""
    return {"phase": "Waiting", "revision": 1, "nextWakeAt": _iso(now + dt.timedelta(minutes=10))}


def test_finished_instances_only_get_their_expiry_scheduled() -> None:
    now = dt.datetime.now(dt.UTC)
    done = _iso(now)
    settled, due = _settled(_inst({"phase": "Complete", "finishedAt": done}))
    assert settled and due == dt.datetime.fromisoformat(done) + dt.timedelta(hours=1)
    expired = _iso(now - dt.timedelta(hours=2))
    assert _settled(_inst({"phase": "Complete", "finishedAt": expired}))[0] is False


def test_a_waiting_instance_with_nothing_due_is_settled_until_its_wake() -> None:
    now = dt.datetime.now(dt.UTC)
    settled, due = _settled(_inst(_waiting(now)))
    assert settled and due is not None and due > now


def test_anything_to_do_goes_to_a_drive() -> None:
    now = dt.datetime.now(dt.UTC)
    waiting = _waiting(now)
    for inst in (
        _inst(waiting, events=[{"type": "go"}]),  # a new event
        _inst({**waiting, "nextWakeAt": _iso(now - dt.timedelta(seconds=1))}),  # due
        _inst(waiting, terminate=True),
        _inst(waiting, suspend=True),
        _inst({"phase": "Running", "revision": 1}),
        _inst({}),  # not admitted yet
    ):
        assert _settled(inst) == (False, None), inst
    assert _settled(_inst(waiting), busy=True)[0] is False, "a pending drive decides"
