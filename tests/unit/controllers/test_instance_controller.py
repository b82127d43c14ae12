"""The instance controller's decisions against the in-memory API: a run to completion,
admission, the 409 re-commit, sandbox failure escalation, the event budget."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tenantflow.controllers import definition
from tenantflow.controllers.instances import InstanceSettings
from tenantflow.controllers.instances.view import InstanceView
from tenantflow.controllers.persist import Persist
from tenantflow.kube import instances
from tenantflow.kube.events import EventRecorder
from tenantflow.sandbox.client.transport import SandboxUnavailable
from tenantflow.sandbox.pod import history_api
from tenantflow.sandbox.protocol.payload import MAX_ARCHIVE_BATCH
from tenantflow.vocabulary import (
    API_VERSION,
    ARCHIVE_NOW_ANNOTATION,
    INSTANCE,
    ROLLBACK_ANNOTATION,
    TENANT,
    Phase,
)
from tests.unit.controllers.harness import NS, Harness

COUNTED = """
async def run(event, step, env):
    env.db.execute('CREATE TABLE IF NOT EXISTS ran (step TEXT)')
    def body(name):
        env.db.execute('INSERT INTO ran VALUES (?)', (name,))
        return name
    a = await step.do('a', lambda: body('a'))
    b = await step.do('b', lambda: body('b'))
    return [a, b, env.db.query('SELECT count(*) AS n FROM ran')[0]['n']]
"""

INSTANCE_ID = (API_VERSION, INSTANCE)

SLEEPER = """
async def run(event, step, env):
    await step.sleep('nap', '1h')
    return 'woke'
"""

EVENTS = """
async def run(event, step, env):
    got = []
    for i in range(3):
        got.append((await step.wait_for_event(f'e{i}', type='go', timeout='1h'))['payload'])
    return got
"""


async def test_an_instance_runs_to_complete_and_says_so(tmp_path: Path) -> None:
    h = Harness.new(tmp_path)
    await h.define("counted", COUNTED)
    key = h.start("one", "counted")
    await h.drive(key)
    st = h.status("one")
    assert st["phase"] == Phase.COMPLETE
    assert st["output"] == ["a", "b", 2]
    assert [s["name"] for s in st["steps"]] == ["a", "b"]
    assert ("Normal", "Completed") in h.events()
    # the watch echoes our write: bookkeeping only (no drive, no GET)
    gets = len([c for c in h.kube.calls if c[0] == "get"])
    h.controller.on_event("MODIFIED", h.watched("one"))
    assert not h.controller.queue.busy(key)
    assert len([c for c in h.kube.calls if c[0] == "get"]) == gets
    assert h.controller.book.phases[key] == ("acme", Phase.COMPLETE)
    assert set(h.usage_refreshes) == {"acme"}, "Tenant.status.usage is refreshed"


async def test_the_concurrency_cap_queues_the_second_instance_in_order(tmp_path: Path) -> None:
    h = Harness.new(tmp_path, maxConcurrentInstances=1)
    await h.define("sleeper", SLEEPER)
    first, second = h.start("first", "sleeper"), h.start("second", "sleeper")
    await h.controller.adopt(lambda namespace: True)  # as at start-up: admission, drives
    await h.controller.queue.drain()
    assert h.status("first")["phase"] == Phase.WAITING
    st = h.status("second")
    assert st["phase"] == Phase.QUEUED
    admitted = next(c for c in st["conditions"] if c["type"] == "Admitted")
    assert (admitted["status"], admitted["reason"]) == ("False", "ConcurrencyLimit")
    assert h.sandbox.calls == 1, "a queued instance never reaches the sandbox"
    # the first one is terminated (as `tenantflow terminate` does): its slot goes to the
    # second, which the controller wakes
    await h.kube.patch(*INSTANCE_ID, "first", "tenant-acme", {"spec": {"terminate": True}})
    await h.drive(first)
    assert h.status("first")["phase"] == Phase.TERMINATED
    await h.drive(first)  # observed finished: the slot frees
    assert h.controller.queue.busy(second), "the queued instance was woken"
    await h.drive(second)
    assert h.status("second")["phase"] == Phase.WAITING


async def _drive_against(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Harness:
    """One drive of a new instance whose status write meets a concurrent `change`."""
    h = Harness.new(tmp_path)
    await h.define("counted", COUNTED)
    key = h.start("one", "counted")
    h.kube.conflict_once(*INSTANCE_ID, "one", "tenant-acme", change)
    await h.drive(key)
    return h


async def test_a_409_that_left_the_journal_alone_commits_the_result_again(tmp_path: Path) -> None:
    h = await _drive_against(
        tmp_path, lambda o: o["metadata"].setdefault("labels", {}).update(team="x")
    )
    st = h.status("one")
    assert st["phase"] == Phase.COMPLETE and st["output"] == ["a", "b", 2]
    assert h.sandbox.calls == 1, "the steps did not run again"
    patches = [c for c in h.kube.calls if c[:2] == ("patch/status", INSTANCE)]
    assert len(patches) == 2, "one conflicting write, one re-commit"


async def test_a_409_that_moved_the_journal_drops_the_result(tmp_path: Path) -> None:
    h = await _drive_against(
        tmp_path, lambda o: o.setdefault("status", {}).update(steps=[], eventsSeen=["x"])
    )
    key = "tenant-acme/one"
    assert "output" not in h.status("one"), "a result built on an old journal is not written"
    assert h.controller.queue.busy(key), "driven again from the fresh journal"


async def test_a_worker_lost_three_times_in_a_row_errors_the_instance(tmp_path: Path) -> None:
    h = Harness.new(tmp_path)
    await h.define("counted", COUNTED)
    key = h.start("one", "counted")
    lost = SandboxUnavailable("SandboxWorkerLost", "the worker died")
    h.sandbox.failures = [lost, lost]
    await h.drive(key, times=2)
    st = h.status("one")
    reachable = next(c for c in st["conditions"] if c["type"] == "SandboxReachable")
    assert (reachable["status"], reachable["reason"]) == ("False", "SandboxWorkerLost")
    assert st["phase"] == Phase.RUNNING
    assert h.controller.queue.scheduled() == 1, "retried later, with backoff"
    h.sandbox.failures = [lost]
    await h.drive(key)
    st = h.status("one")
    assert st["phase"] == Phase.ERRORED and st["error"]["name"] == "SandboxWorkerLost"
    assert "3 times in a row" in st["error"]["message"]
    assert ("Warning", "SandboxWorkerLost") in h.events()


async def test_unreachable_sandboxes_in_between_do_not_count_as_worker_losses(
    tmp_path: Path,
) -> None:
    h = Harness.new(tmp_path)
    await h.define("counted", COUNTED)
    key = h.start("one", "counted")
    lost = SandboxUnavailable("SandboxWorkerLost", "the worker died")
    away = SandboxUnavailable("SandboxUnreachable", "connection refused")
    h.sandbox.failures = [lost, away, lost, away]
    await h.drive(key, times=4)
    assert h.status("one")["phase"] == Phase.RUNNING
    await h.drive(key)  # succeeds: the count starts again
    assert h.status("one")["phase"] == Phase.COMPLETE


async def test_events_are_delivered_within_the_tenants_budget(tmp_path: Path) -> None:
    h = Harness.new(tmp_path, maxEventsPerSecond=1)
    await h.define("events", EVENTS)
    events = [{"type": "go", "payload": i} for i in range(3)]
    key = h.start("one", "events", events=events)
    await h.drive(key)
    st = h.status("one")
    assert len(st["eventsSeen"]) == 1, "a burst of 1 at 1/s: one event now"
    assert st["phase"] == Phase.WAITING
    assert h.controller.queue.scheduled() == 1, "the rest when the budget refills"


async def test_the_echo_of_our_own_write_does_not_cut_a_backoff_short(tmp_path: Path) -> None:
    """A failed sandbox call writes a condition and retries later; the watch event of that
    write is ours and must not drive the instance at once (three worker losses in a row
    would then come within milliseconds, as one restarting sandbox pod)."""
    h = Harness.new(tmp_path)
    await h.define("counted", COUNTED)
    key = h.start("one", "counted")
    h.sandbox.failures = [SandboxUnavailable("SandboxWorkerLost", "the worker died")]
    await h.drive(key)
    assert h.controller.queue.scheduled() == 1, "retried after a backoff"
    written = h.watched("one")
    h.controller.on_event("MODIFIED", written)
    assert not h.controller.queue.busy(key), "the echo of our write is not a reason to drive"
    # someone else's change is
    await h.kube.patch(*INSTANCE_ID, "one", "tenant-acme", {"spec": {"params": {"x": 1}}})
    h.controller.on_event("MODIFIED", h.watched("one"))
    assert h.controller.queue.busy(key)


async def test_the_drive_that_writes_a_finish_frees_the_slot_at_once(tmp_path: Path) -> None:
    """The slot of an instance that finishes frees when its drive writes the finish, not
    at the watch's echo of it (which may come late, or be put off while the lease is
    renewed late): the next instance in line starts at once."""
    h = Harness.new(tmp_path, maxConcurrentInstances=1)
    await h.define("counted", COUNTED)
    first, second = h.start("first", "counted"), h.start("second", "counted")
    await h.drive(first)
    assert h.status("first")["phase"] == Phase.COMPLETE
    await h.drive(second)
    assert h.status("second")["phase"] == Phase.COMPLETE


PIPELINE = {
    "main.py": (
        "from checks import verdict\n"
        "async def run(event, step):\n"
        "    n = await step.do('count', lambda: len(event['payload']['files']))\n"
        "    return verdict(n)\n"
    ),
    "checks.py": "def verdict(n):\n    return 'ok' if n < 3 else 'too many'\n",
}


async def test_multi_file_code_from_a_configmap_runs_and_each_change_is_a_revision(
    tmp_path: Path,
) -> None:
    h = Harness.new(tmp_path)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ci", "namespace": NS}}
    h.kube.put({**cm, "data": {**PIPELINE, "README.md": "not a module"}})
    assert await h.define("ci", configMapRef={"name": "ci"}, main="main") == 1
    revision = (await h.kube.list("apps/v1", "ControllerRevision", NS))[0]
    assert sorted(revision["data"]["files"]) == ["checks.py", "main.py"]
    key = h.start("build-1", "ci", params={"files": ["a", "b"]})
    await h.drive(key)
    st = h.status("build-1")
    assert (st["phase"], st.get("output")) == (Phase.COMPLETE, "ok"), st
    # a change to a module other than main is a new revision too
    h.kube.put({**cm, "data": {**PIPELINE, "checks.py": "def verdict(n):\n    return n\n"}})
    assert await h.define("ci", configMapRef={"name": "ci"}, main="main") == 2
    key = h.start("build-2", "ci", params={"files": ["a", "b"]})
    await h.drive(key)
    assert h.status("build-2")["output"] == 2


async def test_a_rollback_lives_outside_the_spec_and_the_spec_pin_wins(tmp_path: Path) -> None:
    h = Harness.new(tmp_path)
    assert await h.define("ver", "async def run(event, step):\n    return 1\n") == 1
    assert await h.define("ver", "async def run(event, step):\n    return 2\n") == 2
    body = h.kube.read(API_VERSION, "WorkflowDefinition", "ver", NS)
    body["metadata"]["annotations"] = {ROLLBACK_ANNOTATION: "1"}  # tenantflow rollback --to 1
    h.kube.put(body)
    await definition.reconcile(h.kube, EventRecorder(h.kube), Persist(h.kube), f"{NS}/ver")
    status = h.kube.read(API_VERSION, "WorkflowDefinition", "ver", NS)["status"]
    assert (status["activeRevision"], status["rolledBackTo"]) == (1, 1)
    assert ("Normal", "RolledBack") in h.events()
    body = h.kube.read(API_VERSION, "WorkflowDefinition", "ver", NS)
    body["spec"]["pinnedRevision"] = 2  # Git pins a revision: it wins
    h.kube.put(body)
    await definition.reconcile(h.kube, EventRecorder(h.kube), Persist(h.kube), f"{NS}/ver")
    assert (
        h.kube.read(API_VERSION, "WorkflowDefinition", "ver", NS)["status"]["activeRevision"] == 2
    )
    body = h.kube.read(API_VERSION, "WorkflowDefinition", "ver", NS)
    del body["spec"]["pinnedRevision"]
    body["metadata"]["annotations"] = {ROLLBACK_ANNOTATION: "7"}  # a revision that is gone
    h.kube.put(body)
    await definition.reconcile(h.kube, EventRecorder(h.kube), Persist(h.kube), f"{NS}/ver")
    ready = h.kube.read(API_VERSION, "WorkflowDefinition", "ver", NS)["status"]["conditions"]
    stalled = {c["type"]: c for c in ready}["Stalled"]
    assert stalled["reason"] == "PinnedRevisionNotFound"
    assert "annotation tenantflow.dev/rollback-to 7 does not exist" in stalled["message"]


async def test_a_late_creation_event_never_runs_a_persisted_step_again(tmp_path: Path) -> None:
    """Found by `make chaos` (seed 20261205): an instance's creation event (no status yet)
    came late, from a watch resumed behind the instance's first advance, after this
    replica had lost and regained its shard (which forgets its bookkeeping). The body of
    that event was kept for the next drive as if nothing could have been written yet:
    that drive started the instance again from an empty journal and ran its persisted
    steps a second time (its write was then refused with 409, the steps had run)."""
    h = Harness.new(tmp_path)
    await h.define(
        "sleepy", COUNTED.replace("b = await", "await step.sleep('nap', '1h')\n    b = await")
    )
    key = h.start("one", "sleepy")
    created = h.watched("one")  # the creation event, held back by a lagging watch
    await h.drive(key)
    assert [s["name"] for s in h.status("one")["steps"]] == ["a", "nap"]
    h.controller.release(lambda namespace: True)  # the shard lost (a late renewal) ...
    h.controller.on_event("ADDED", created)  # ... regained, and the late event arrives
    await h.controller.queue.drain()
    await h.drive(key)
    with sqlite3.connect(tmp_path / "tenant.sqlite3") as db:  # the tenant's own store
        ran = [r[0] for r in db.execute("SELECT step FROM ran")]
    assert ran == ["a"], "a persisted step ran again"


async def test_a_finished_instance_is_archived_before_it_is_deleted(tmp_path: Path) -> None:
    """Issue 34: past its TTL a finished instance goes to its tenant's history, and its CR
    is deleted only once the runner said the record is kept; a store that cannot take it
    keeps the CR, says why on it, and is tried again."""
    h = Harness.new(tmp_path)
    await h.define("counted", COUNTED)
    key = h.start("one", "counted")
    h.kube.objects[(API_VERSION, INSTANCE, NS, "one")]["metadata"]["labels"] = {
        "repo": "acme-web",
        "tenantflow.dev/shard": "3",
    }
    await h.drive(key)
    assert h.status("one")["phase"] == Phase.COMPLETE
    h.controller.settings = InstanceSettings(finished_ttl=1e-6)  # its TTL is up
    h.sandbox.history_failures.append(SandboxUnavailable("HistoryFull", "the store is full"))
    await h.drive(key)
    archived = next(c for c in h.status("one")["conditions"] if c["type"] == "Archived")
    assert (archived["status"], archived["reason"]) == ("False", "HistoryFull")
    assert ("Warning", "HistoryFull") in h.events()
    assert h.controller.queue.due_at(key) is not None, "tried again"
    await h.drive(key)
    assert h.kube.read(API_VERSION, INSTANCE, "one", NS) is None, "deleted once archived"
    store = h.sandbox.store
    assert store is not None
    kept = store.get("one")
    assert kept is not None and kept.phase == Phase.COMPLETE
    assert kept.record["status"]["output"] == ["a", "b", 2]
    assert kept.attributes == {"repo": "acme-web"}, "the tenant's labels, not ours"
    assert [i.name for i in store.search(attributes={"repo": "acme-web"})[0]] == ["one"]


async def test_an_archive_waiting_for_an_idle_sandbox_is_no_warning(tmp_path: Path) -> None:
    """An idle tenant's sandbox is started for the archive: Archived=False says so, with
    no Warning, and it is tried again soon; a RollbackFailed instance is never archived
    by age (an undo is owed: a person retries or deletes it)."""
    h = Harness.new(tmp_path)
    await h.define("counted", COUNTED)
    key = h.start("one", "counted")
    await h.drive(key)
    h.controller.settings = InstanceSettings(finished_ttl=1e-6)
    h.sandbox.history_failures.append(SandboxUnavailable("WaitingForSandbox", "starting"))
    await h.drive(key)
    archived = next(c for c in h.status("one")["conditions"] if c["type"] == "Archived")
    assert archived["reason"] == "WaitingForSandbox"
    assert [e for e in h.events() if e[0] == "Warning"] == []
    due = h.controller.queue.due_at(key)
    assert due is not None and due < dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    h.kube.objects[(API_VERSION, INSTANCE, NS, "one")]["status"]["phase"] = "RollbackFailed"
    await h.drive(key)
    assert h.kube.read(API_VERSION, INSTANCE, "one", NS) is not None, "kept: an undo is owed"


async def test_a_tenants_keep_finished_for_overrides_the_operators_ttl(tmp_path: Path) -> None:
    h = Harness.new(tmp_path)  # the operator keeps finished instances for ever
    await h.define("counted", COUNTED)
    key = h.start("one", "counted")
    await h.drive(key)
    await h.drive(key)
    assert h.kube.read(API_VERSION, INSTANCE, "one", NS) is not None, "kept: no TTL"
    h.kube.objects[(API_VERSION, TENANT, None, "acme")]["spec"]["history"] = {
        "keepFinishedFor": "0s"
    }
    h.controller.keep_for.discard("acme")  # (read again within a minute otherwise)
    await h.drive(key)
    assert h.kube.read(API_VERSION, INSTANCE, "one", NS) is None
    # and the drive that writes a finish schedules its archive by the tenant's setting
    key = h.start("two", "counted")
    await h.drive(key)
    assert h.status("two")["phase"] == Phase.COMPLETE
    due = h.controller.queue.due_at(key)
    assert due is not None and due <= dt.datetime.now(dt.UTC), "archived at once, not in 7 days"
    assert h.sandbox.store is not None and h.sandbox.store.get("one") is not None


async def test_an_instance_keeps_only_the_conditions_that_say_something(
    tmp_path: Path,
) -> None:
    """Issue 34: each condition is paid for per instance in etcd and the API server's
    watch cache; Ready stays (kubectl wait), the others only when away from normal."""
    h = Harness.new(tmp_path)
    await h.define(
        "sleepy", COUNTED.replace("b = await", "await step.sleep('nap', '1h')\n    b = await")
    )
    key = h.start("one", "sleepy")
    await h.drive(key)
    types = {c["type"]: c["status"] for c in h.status("one")["conditions"]}
    assert types == {"Ready": "False", "Reconciling": "True"}, "Waiting: in progress"
    h.sandbox.failures = [SandboxUnavailable("SandboxWorkerLost", "the worker died")]
    await h.kube.patch(*INSTANCE_ID, "one", NS, {"spec": {"events": [{"type": "poke"}]}})
    await h.drive(key)
    assert {c["type"] for c in h.status("one")["conditions"]} >= {"SandboxReachable"}
    await h.drive(key)
    await h.drive(key)
    assert "SandboxReachable" not in {c["type"] for c in h.status("one")["conditions"]}


async def test_an_instance_carries_its_definitions_search_attributes_as_labels(
    tmp_path: Path,
) -> None:
    """Issue 34.3: the attributes a definition declares are read from params at the start,
    kept as labels (a label its creator set wins), and indexed by the archive."""
    h = Harness.new(tmp_path)
    h.kube.put(
        {
            "apiVersion": API_VERSION,
            "kind": "WorkflowDefinition",
            "metadata": {"name": "ci", "namespace": NS, "uid": "uid-ci"},
            "spec": {
                "source": {"inline": COUNTED},
                "searchAttributes": {"repo": "repo", "branch": "git.branch"},
            },
        }
    )
    await definition.reconcile(h.kube, EventRecorder(h.kube), Persist(h.kube), f"{NS}/ci")
    key = h.start("one", "ci", params={"repo": "acme/web", "git": {"branch": "main"}})
    h.kube.objects[(API_VERSION, INSTANCE, NS, "one")]["metadata"]["labels"] = {"branch": "mine"}
    await h.drive(key)
    labels = h.watched("one")["metadata"]["labels"]
    assert labels == {"repo": "acme-web", "branch": "mine"}
    assert h.status("one")["phase"] == Phase.COMPLETE, "labelled and run in one drive"
    h.controller.settings = InstanceSettings(finished_ttl=1e-6)
    await h.drive(key)
    store = h.sandbox.store
    assert store is not None
    assert [i.name for i in store.search(attributes={"repo": "acme-web"})[0]] == ["one"]


async def test_records_the_sandbox_rejected_as_forged_are_a_warning_event(
    tmp_path: Path,
) -> None:
    """Issue 33.3: a stored step result that failed the runner's check was ignored (the
    step ran); the operator says so on the instance, once per advance that reports it."""
    h = Harness.new(tmp_path)
    await h.define(
        "sleepy", COUNTED.replace("b = await", "await step.sleep('nap', '1h')\n    b = await")
    )
    h.sandbox.answer_extra = {
        "rejected": [{"record": "stepResult", "step": "a", "problem": "not vouched for"}]
    }
    await h.drive(h.start("one", "sleepy"))
    assert ("Warning", "StoredRecordRejected") in h.events()


async def test_a_run_marked_beyond_its_schedules_history_is_archived_at_once(
    tmp_path: Path,
) -> None:
    """The operator keeps finished instances for ever here, yet one its schedule handed
    over (ARCHIVE_NOW_ANNOTATION) is archived and then deleted on its next drive."""
    h = Harness.new(tmp_path)
    await h.define("counted", COUNTED)
    key = h.start("one", "counted")
    await h.drive(key)
    await h.drive(key)
    assert h.kube.read(API_VERSION, INSTANCE, "one", NS) is not None, "kept: no TTL"
    meta = h.kube.objects[(API_VERSION, INSTANCE, NS, "one")]["metadata"]
    meta["annotations"] = {ARCHIVE_NOW_ANNOTATION: "beyond the history limits of nightly"}
    view = InstanceView.decode(h.watched("one"))
    assert not h.controller.settled(view), "its watch event asks for a drive"
    await h.drive(key)
    assert h.kube.read(API_VERSION, INSTANCE, "one", NS) is None
    assert h.sandbox.store is not None and h.sandbox.store.get("one") is not None


async def test_start_with_an_event_creates_or_signals_idempotently_by_name(
    tmp_path: Path,
) -> None:
    """Issue 36.6, Temporal's signal-with-start: the first call creates the instance with
    the event in its inbox (one write); later ones send the running instance the event."""
    h = Harness.new(tmp_path)
    await h.define("events", EVENTS)
    body = {
        "apiVersion": API_VERSION,
        "kind": INSTANCE,
        "metadata": {"name": "inbox", "namespace": NS},
        "spec": {"workflowRef": {"name": "events"}},
    }
    assert await instances.start_with_event(h.kube, body, "go", 1) == ("inbox", True)
    await h.drive(f"{NS}/inbox")
    assert h.status("inbox")["phase"] == Phase.WAITING, "took the first, waits for a second"
    for n in (2, 3):
        assert await instances.start_with_event(h.kube, body, "go", n) == ("inbox", False)
        await h.drive(f"{NS}/inbox")
    st = h.status("inbox")
    assert (st["phase"], st["output"]) == (Phase.COMPLETE, [1, 2, 3])
    with pytest.raises(instances.InstanceTaken, match="has finished"):
        await instances.start_with_event(h.kube, body, "go", 4)
    other = {**body, "spec": {"workflowRef": {"name": "counted"}}}
    with pytest.raises(instances.InstanceTaken, match="runs events, not counted"):
        await instances.start_with_event(h.kube, other, "go", 4)


async def test_instances_due_together_are_archived_in_one_request(tmp_path: Path) -> None:
    """Issue 40: the finished instances of one tenant archived at the same moment go to
    its runner as one request (one signed hop, one sync of the store); a record the
    runner refuses keeps only its own CR, with the runner's reason, and the others go."""
    h = Harness.new(tmp_path)
    await h.define("counted", COUNTED)
    keys = [h.start(name, "counted") for name in ("one", "two", "three")]
    for key in keys:
        await h.drive(key)
    h.controller.settings = InstanceSettings(finished_ttl=1e-6)
    # "three" carries more labels than a history record keeps: its record is refused
    labels = {f"label-{i}": "x" for i in range(history_api.MAX_ATTRIBUTES + 1)}
    h.kube.objects[(API_VERSION, INSTANCE, NS, "three")]["metadata"]["labels"] = labels
    await asyncio.gather(*(h.drive(key) for key in keys))
    archives = [r for r in h.sandbox.history_requests if r["op"] == "archive"]
    assert len(archives) == 1 and len(archives[0]["instances"]) == 3, archives
    assert h.kube.read(API_VERSION, INSTANCE, "one", NS) is None
    assert h.kube.read(API_VERSION, INSTANCE, "two", NS) is None
    assert h.kube.read(API_VERSION, INSTANCE, "three", NS) is not None, "refused: kept"
    archived = next(c for c in h.status("three")["conditions"] if c["type"] == "Archived")
    assert (archived["status"], archived["reason"]) == ("False", "ArchiveRefused")
    assert "attributes must be an object of at most" in archived["message"]
    store = h.sandbox.store
    assert store is not None and {i.name for i in store.search()[0]} == {"one", "two"}


async def test_more_instances_due_together_than_a_batch_holds_go_in_several(
    tmp_path: Path,
) -> None:
    """A full batch goes at once and the next record starts a new one: no request carries
    more than the runner takes (it refused the whole request, and every archive waited a
    minute to be tried again)."""
    h = Harness.new(tmp_path)
    await h.define("counted", COUNTED)
    keys = [h.start(f"i{n}", "counted") for n in range(MAX_ARCHIVE_BATCH + 3)]  # (admission)
    for key in keys:
        await h.drive(key)
    h.controller.settings = InstanceSettings(finished_ttl=1e-6)
    await asyncio.gather(*(h.drive(key) for key in keys))
    sizes = [len(r["instances"]) for r in h.sandbox.history_requests if r["op"] == "archive"]
    assert sum(sizes) == len(keys) and max(sizes) == MAX_ARCHIVE_BATCH, sizes
    assert all(h.kube.read(API_VERSION, INSTANCE, f"i{n}", NS) is None for n in range(len(keys)))


async def test_a_runner_older_than_batching_gets_its_archives_one_by_one(
    tmp_path: Path,
) -> None:
    """During an upgrade the sandbox may still run the image before batched archives: it
    refuses the batch's shape (400 BadRequest), and the operator falls back to the form it
    knows instead of keeping every finished instance until the sandbox is upgraded."""
    h = Harness.new(tmp_path)
    h.sandbox.batches = False
    await h.define("counted", COUNTED)
    keys = [h.start(name, "counted") for name in ("one", "two")]
    for key in keys:
        await h.drive(key)
    h.controller.settings = InstanceSettings(finished_ttl=1e-6)
    await asyncio.gather(*(h.drive(key) for key in keys))
    archives = [r for r in h.sandbox.history_requests if r["op"] == "archive"]
    assert [sorted(r) for r in archives] == [["instances", "op"]] + [["instance", "op"]] * 2
    assert {r["instance"]["name"] for r in archives[1:]} == {"one", "two"}
    assert h.kube.read(API_VERSION, INSTANCE, "one", NS) is None
    assert h.kube.read(API_VERSION, INSTANCE, "two", NS) is None
    store = h.sandbox.store
    assert store is not None and {i.name for i in store.search()[0]} == {"one", "two"}
