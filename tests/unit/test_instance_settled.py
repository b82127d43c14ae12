"""InstanceController.settled: which watched states skip a drive (and its GET)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from tenantflow.controllers.instances import InstanceController, InstanceSettings
from tenantflow.controllers.instances.view import InstanceView
from tenantflow.controllers.revision_cache import RevisionCache
from tenantflow.testing.fake_kube import FakeKube

NOW = dt.datetime.now(dt.UTC)


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


WAITING = {"phase": "Waiting", "revision": 1, "nextWakeAt": _iso(NOW + dt.timedelta(minutes=10))}


def test_finished_instances_only_get_their_expiry_scheduled() -> None:
    done = _iso(NOW)
    settled, due = _settled(_inst({"phase": "Complete", "finishedAt": done}))
    assert settled and due == dt.datetime.fromisoformat(done) + dt.timedelta(hours=1)
    expired = _iso(NOW - dt.timedelta(hours=2))
    assert _settled(_inst({"phase": "Complete", "finishedAt": expired}))[0] is False


def test_a_waiting_instance_with_nothing_due_is_settled_until_its_wake() -> None:
    settled, due = _settled(_inst(WAITING))
    assert settled and due is not None and due > NOW


def test_anything_to_do_goes_to_a_drive() -> None:
    for inst in (
        _inst(WAITING, events=[{"type": "go"}]),  # a new event
        _inst({**WAITING, "nextWakeAt": _iso(NOW - dt.timedelta(seconds=1))}),  # due
        _inst(WAITING, terminate=True),
        _inst(WAITING, suspend=True),
        _inst({"phase": "Running", "revision": 1}),
        _inst({}),  # not admitted yet
    ):
        assert _settled(inst) == (False, None), inst
    assert _settled(_inst(WAITING), busy=True)[0] is False, "a pending drive decides"
