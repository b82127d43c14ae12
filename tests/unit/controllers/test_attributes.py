"""Search attributes set from workflow code (issue 34.3), as the instance controller
applies them: labels patched once when they change, not written again when they do not,
removed when set to None, labels its creator set kept; what a hostile sandbox puts in
the answer's attributes ignored, never a crash nor a write of an undeclared label."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenantflow.controllers import definition
from tenantflow.controllers.instances import InstanceSettings
from tenantflow.controllers.persist import Persist
from tenantflow.kube.events import EventRecorder
from tenantflow.observability import metrics
from tenantflow.vocabulary import API_VERSION, DEFINITION, INSTANCE, SHARD_LABEL, Phase
from tests.unit.controllers.harness import NS, Harness

pytestmark = pytest.mark.unit

CI = """
async def run(event, step, env):
    await step.do("build", lambda: "built")
    await step.set_attributes(status="tests passed")
    await step.wait_for_event("go", type="go")
    await step.set_attributes(status=None, coverage=81)
    return "ok"
"""
CREATOR = {"team": "web", SHARD_LABEL: "s-1"}  # labels the instance's creator (and we) set


async def _started(h: Harness) -> str:
    h.kube.put(
        {
            "apiVersion": API_VERSION,
            "kind": DEFINITION,
            "metadata": {"name": "ci", "namespace": NS, "uid": "uid-ci"},
            "spec": {
                "source": {"inline": CI},
                "searchAttributes": {"status": "status", "coverage": "coverage"},
            },
        }
    )
    await definition.reconcile(h.kube, EventRecorder(h.kube), Persist(h.kube), f"{NS}/ci")
    key = h.start("one", "ci")
    h.kube.objects[(API_VERSION, INSTANCE, NS, "one")]["metadata"]["labels"] = dict(CREATOR)
    return key


def _label_patches(h: Harness) -> int:
    """Metadata patches of the instance (status writes go to the subresource)."""
    return sum(1 for call in h.kube.calls if call == ("patch", INSTANCE, "one"))


async def _event(h: Harness, key: str, type_: str) -> None:
    events = h.watched("one")["spec"].get("events") or []
    await h.kube.patch(
        API_VERSION, INSTANCE, "one", NS, {"spec": {"events": [*events, {"type": type_}]}}
    )
    await h.drive(key)


async def test_labels_are_patched_once_kept_when_unchanged_and_removed_when_none(
    tmp_path: Path,
) -> None:
    h = Harness.new(tmp_path)
    key = await _started(h)
    await h.drive(key)
    assert h.status("one")["phase"] == Phase.WAITING
    labels = h.watched("one")["metadata"]["labels"]
    assert labels == {**CREATOR, "status": "tests-passed"}, "fitted, creator's kept"
    assert _label_patches(h) == 1

    await _event(h, key, "poke")  # an advance that sets the same: no write
    assert h.status("one")["phase"] == Phase.WAITING
    assert len(h.status("one")["eventsSeen"]) == 1, "it advanced"
    assert _label_patches(h) == 2, "only the test's own spec patch"

    await _event(h, key, "go")  # status removed, coverage set: one patch
    assert h.status("one")["phase"] == Phase.COMPLETE
    assert h.watched("one")["metadata"]["labels"] == {**CREATOR, "coverage": "81"}
    assert _label_patches(h) == 4, "the test's spec patch and one label patch"

    h.controller.settings = InstanceSettings(finished_ttl=1e-6)
    await h.drive(key)  # archived: its record carries the labels
    store = h.sandbox.store
    assert store is not None
    assert [i.name for i in store.search(attributes={"coverage": "81"})[0]] == ["one"]


async def test_hostile_attributes_in_the_answer_are_ignored(tmp_path: Path) -> None:
    h = Harness.new(tmp_path)
    key = await _started(h)
    ignored = metrics.ATTRIBUTES_IGNORED.labels(tenant="acme", reason="invalid")
    before = ignored._value.get()
    h.sandbox.answer_extra = {
        "attributes": {
            SHARD_LABEL: "s-9",  # the platform's label: never the code's
            "team": "mallory",  # the creator's, not declared
            "status": "x" * 10_000,
            "coverage": {"nested": 1},
        }
    }
    await h.drive(key)
    assert h.status("one")["phase"] == Phase.WAITING, "the advance itself is recorded"
    assert h.watched("one")["metadata"]["labels"] == CREATOR
    assert _label_patches(h) == 0
    assert ignored._value.get() - before == 4

    h.sandbox.answer_extra = {"attributes": {f"a{i}": "v" for i in range(1000)}}
    await _event(h, key, "poke")
    h.sandbox.answer_extra = {"attributes": ["status", "x"]}
    await _event(h, key, "poke2")
    assert h.watched("one")["metadata"]["labels"] == CREATOR
    assert _label_patches(h) == 2, "only the test's own spec patches"
