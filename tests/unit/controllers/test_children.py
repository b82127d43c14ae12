"""Child workflows through the real instance controller (in-memory API, the real engine
in-process): children created owned by their parent, the parent woken by their finish,
a cap of one slot that does not deadlock, failures and the parent-close policy."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from tenantflow.controllers.instances.children import (
    CHILD_RESYNC,
    RESYNC_FIRST,
    START_RETRY,
)
from tenantflow.controllers.ownership import Verdict
from tenantflow.engine.children import child_name
from tenantflow.kube.client import ApiException
from tenantflow.observability import metrics
from tenantflow.vocabulary import API_VERSION, INSTANCE, PARENT_UID_LABEL, Phase
from tenantflow_dev.fake_kube import FakeKube
from tests.unit.controllers.harness import NS, Harness

PIPELINE = """
import asyncio
async def run(event, step, env):
    try:
        built = await asyncio.gather(
            *(step.child(f'build-{s}', 'build', {'svc': s}) for s in event['payload']['svcs'])
        )
    except Exception as exc:
        return {'failed': type(exc).__name__, 'step': exc.step, 'error': exc.error_name}
    return [b['image'] for b in built]
"""

BUILD = """
async def run(event, step, env):
    svc = event['payload']['svc']
    if svc == 'slow':
        await step.sleep('wait', '1h')
    def body():
        if svc == 'broken':
            raise ValueError('cannot build ' + svc)
        return svc + ':1'
    return {'image': await step.do('build', body, retries={'limit': 0})}
"""


async def pipeline(tmp_path: Path, **limits: Any) -> Harness:
    """A tenant with both definitions."""
    h = Harness.new(tmp_path, **limits)
    await h.define("pipeline", PIPELINE)
    await h.define("build", BUILD)
    return h


async def run_to_rest(h: Harness, svcs: list[str]) -> dict[str, Any]:
    """Start the pipeline over `svcs` as the operator would at start-up; its status once
    nothing is left to do."""
    h.start("ci", "pipeline", params={"svcs": svcs})
    await h.controller.adopt(lambda namespace: True)
    await pump(h)
    return h.status("ci")


async def pump(h: Harness, rounds: int = 20) -> None:
    """Drives, then every object as a watch would bring it back, until nothing is left
    to do (the fake API has no watch of its own)."""
    for _ in range(rounds):
        await h.controller.queue.drain()
        names = [
            o["metadata"]["name"] for (_, k, _, _), o in h.kube.objects.items() if k == INSTANCE
        ]
        for name in names:
            h.controller.on_event("MODIFIED", h.watched(name))
        if not any(h.controller.queue.busy(f"{NS}/{name}") for name in names):
            return


async def finish(h: Harness, child: str) -> None:
    """The child's finish, written as its own drive would have (the watch not told)."""
    done = {
        "phase": "Complete",
        "output": {"image": "slow:1"},
        "finishedAt": "2030-01-01T00:00:00Z",
    }
    await h.kube.patch(API_VERSION, INSTANCE, child, NS, {"status": done}, subresource="status")


async def test_children_run_under_a_cap_of_one_and_their_results_reach_the_parent(
    tmp_path: Path,
) -> None:
    h = await pipeline(tmp_path, maxConcurrentInstances=1)
    st = await run_to_rest(h, ["api", "web"])
    assert st["phase"] == Phase.COMPLETE, st
    assert st["output"] == ["api:1", "web:1"]
    parent_uid = h.watched("ci")["metadata"]["uid"]
    for svc in ("api", "web"):
        child = h.watched(child_name("ci", f"build-{svc}"))
        owner = child["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == (INSTANCE, "ci", True)
        assert child["metadata"]["labels"][PARENT_UID_LABEL] == parent_uid
        assert child["spec"]["params"] == {"svc": svc}
        assert child["status"]["phase"] == Phase.COMPLETE
        step = next(s for s in st["steps"] if s["name"] == f"build-{svc}")
        assert step["kind"] == "child" and step["child"] == child["metadata"]["name"]
    assert ("Normal", "ChildrenStarted") in h.events()


async def test_a_failed_child_is_a_step_error_the_parent_can_handle(tmp_path: Path) -> None:
    h = await pipeline(tmp_path)
    st = await run_to_rest(h, ["api", "broken"])
    assert st["phase"] == Phase.COMPLETE, st
    assert st["output"] == {"failed": "StepError", "step": "build-broken", "error": "ValueError"}


async def test_a_terminated_parent_terminates_the_children_it_awaits(tmp_path: Path) -> None:
    h = await pipeline(tmp_path)
    assert (await run_to_rest(h, ["slow"]))["phase"] == Phase.WAITING
    key, child = f"{NS}/ci", child_name("ci", "build-slow")
    assert h.status(child)["phase"] == Phase.WAITING
    await h.kube.patch(API_VERSION, INSTANCE, "ci", NS, {"spec": {"terminate": True}})
    await h.drive(key)
    assert h.status("ci")["phase"] == Phase.TERMINATED
    assert h.watched(child)["spec"]["terminate"] is True
    await pump(h)
    assert h.status(child)["phase"] == Phase.TERMINATED


async def test_an_instance_of_that_name_that_is_not_its_child_fails_the_step(
    tmp_path: Path,
) -> None:
    h = await pipeline(tmp_path)
    squatter = child_name("ci", "build-api")
    h.start(squatter, "build", params={"svc": "api"})  # made by hand, owned by nobody
    h.start("ci", "pipeline", params={"svcs": ["api"]})
    await h.drive(f"{NS}/ci")
    await h.controller.queue.drain()
    st = h.status("ci")
    assert st["phase"] == Phase.COMPLETE, st
    assert st["output"] == {"failed": "StepError", "step": "build-api", "error": "ChildNameTaken"}
    assert "ownerReferences" not in h.watched(squatter)["metadata"]


async def test_a_forged_start_names_no_object_the_operator_did_not_derive(
    tmp_path: Path,
) -> None:
    """The runner checks a start's shape; what it cannot know is which steps the journal
    awaits. A start for a step that is not awaited starts nothing, and a start's own
    `name` is ignored: the child is named by the operator."""
    h = await pipeline(tmp_path)
    real = h.sandbox.advance

    async def forging(endpoint: str, payload: dict[str, Any]) -> dict[str, Any]:
        result = await real(endpoint, payload)
        for start in result["outcome"].get("children") or []:
            start["name"] = "someone-elses-instance"
        ghost = {"step": "ghost", "name": "ghost", "definition": "build", "params": None}
        result["outcome"].setdefault("children", []).append(ghost)
        return result

    h.sandbox.advance = forging  # type: ignore[method-assign]
    h.start("ci", "pipeline", params={"svcs": ["api"]})
    await h.drive(f"{NS}/ci")
    made = {
        o["metadata"]["name"]
        for (_, kind, _, _), o in h.kube.objects.items()
        if kind == INSTANCE and o["metadata"]["name"] != "ci"
    }
    assert made == {child_name("ci", "build-api")}


async def test_a_child_deleted_while_awaited_is_started_again(tmp_path: Path) -> None:
    h = await pipeline(tmp_path)
    assert (await run_to_rest(h, ["slow"]))["phase"] == Phase.WAITING
    child = child_name("ci", "build-slow")
    body = h.watched(child)
    await h.kube.delete(API_VERSION, INSTANCE, child, NS)
    h.kube.calls.clear()
    h.controller.on_event("DELETED", body)  # the watch says so; the parent hears of it
    await pump(h)
    assert ("create", INSTANCE, child) in h.kube.calls
    assert h.status(child)["phase"] == Phase.WAITING and h.status("ci")["phase"] == Phase.WAITING


async def test_a_parent_reads_only_the_children_that_are_not_known_active(
    tmp_path: Path,
) -> None:
    """A fan-out must not cost a read of every child at each child's finish."""
    h = await pipeline(tmp_path)
    assert (await run_to_rest(h, ["slow", "api"]))["phase"] == Phase.WAITING
    h.kube.calls.clear()
    await h.drive(f"{NS}/ci")
    reads = [c for c in h.kube.calls if c[0] in ("get", "list") and c[2] != "ci"]
    assert reads == [], "the sleeping child is active per the watch: not read"


async def test_a_child_finished_while_no_watch_was_open_wakes_its_parent(tmp_path: Path) -> None:
    """Found under chaos: the child finished while the watch was cut (its finish reached
    the API server, the operator did not see it), and the relist brings it as ADDED. Its
    parent, woken first, must not take it for the active child the book still shows."""
    h = await pipeline(tmp_path)
    assert (await run_to_rest(h, ["slow"]))["phase"] == Phase.WAITING
    child = child_name("ci", "build-slow")
    await finish(h, child)
    h.controller.on_event("ADDED", h.watched(child))  # the relist, after a cut watch
    await h.controller.queue.drain()
    st = h.status("ci")
    assert st["phase"] == Phase.COMPLETE, st
    assert st["output"] == ["slow:1"]


async def test_a_child_seen_finished_while_the_lease_was_late_still_wakes_its_parent(
    tmp_path: Path,
) -> None:
    """Issue 41, found by `make chaos`: the child's finish came while this replica's lease
    was being renewed late (the API server restarting), so the event was put off; the
    drive it became found the child finished and told no one. The parent waited for ever."""
    h = await pipeline(tmp_path)
    assert (await run_to_rest(h, ["slow"]))["phase"] == Phase.WAITING
    child = child_name("ci", "build-slow")
    await finish(h, child)
    h.controller.gate = lambda namespace: Verdict.DEFER
    h.controller.on_event("MODIFIED", h.watched(child))  # fenced: put off, not dropped
    await h.controller.queue.drain()
    assert h.controller.queue.due_at(f"{NS}/{child}") is not None
    h.controller.gate = lambda namespace: Verdict.ACT  # renewed
    await h.drive(f"{NS}/{child}")  # the put-off event's drive
    await h.controller.queue.drain()
    st = h.status("ci")
    assert (st["phase"], st["output"]) == (Phase.COMPLETE, ["slow:1"]), st


class RefusingKube(FakeKube):
    """Answers 409 to the first create of an instance without creating it (as the chaos
    suite's proxy does; a webhook or an aggregated API can too)."""

    refused: int = 0

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj["kind"] == INSTANCE and not self.refused:
            self.refused += 1
            raise ApiException(status=409, reason="Conflict")
        return await super().create(obj)


async def test_a_start_answered_409_with_no_child_there_is_tried_again(tmp_path: Path) -> None:
    """Issue 41: the parent took the 409 for its own child already there, found none, and
    waited for ever on a child never created."""
    h = Harness.new(tmp_path, kube=RefusingKube())
    await h.define("pipeline", PIPELINE)
    await h.define("build", BUILD)
    assert (await run_to_rest(h, ["api"]))["phase"] == Phase.WAITING
    child = child_name("ci", "build-api")
    assert h.kube.read(API_VERSION, INSTANCE, child, NS) is None
    assert ("Warning", "ChildNotStarted") in h.events()
    due = h.controller.queue.due_at(f"{NS}/ci")
    assert due is not None and due <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=START_RETRY)
    h.controller.queue.request(f"{NS}/ci")  # START_RETRY later
    await pump(h)
    st = h.status("ci")
    assert (st["phase"], st["output"]) == (Phase.COMPLETE, ["api:1"]), st


async def test_a_finish_the_watch_never_brought_is_found_by_the_parents_resync(
    tmp_path: Path,
) -> None:
    """The safety net: whatever was lost, a waiting parent reads all its children within
    RESYNC_FIRST of starting them, then at doubling intervals up to CHILD_RESYNC, and
    counts what the watch did not tell it."""
    h = await pipeline(tmp_path)
    now = [1000.0]
    h.controller.children.clock = lambda: now[0]
    key = f"{NS}/ci"
    assert (await run_to_rest(h, ["slow"]))["phase"] == Phase.WAITING
    due = h.controller.queue.due_at(key)
    assert due is not None and due <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=RESYNC_FIRST)
    intervals = []
    for _ in range(6):  # re-reads that find nothing new: the interval doubles, capped
        now[0] += h.controller.children.resync_in(key)
        await h.drive(key)
        intervals.append(h.controller.children.resync_in(key))
    assert intervals == [30, 60, 120, 240, CHILD_RESYNC, CHILD_RESYNC]
    child = child_name("ci", "build-slow")
    await finish(h, child)  # and no event of it, ever
    await h.drive(key)
    assert h.status("ci")["phase"] == Phase.WAITING, "trusted the watch: not read yet"
    before = metrics.CHILDREN_RESYNCED.labels(tenant="acme")._value.get()
    now[0] += CHILD_RESYNC
    await h.drive(key)  # its resync, due by now
    await h.controller.queue.drain()
    st = h.status("ci")
    assert (st["phase"], st["output"]) == (Phase.COMPLETE, ["slow:1"]), st
    assert metrics.CHILDREN_RESYNCED.labels(tenant="acme")._value.get() == before + 1
