"""The definition controller's plan is pure (read → plan → apply): the same reads give
the same decisions, and its reads ask the API server for the definition's instances by
field selector instead of listing the namespace."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tenantflow.controllers import definition
from tenantflow.controllers.persist import Persist
from tenantflow.kube.events import EventRecorder
from tenantflow.lifecycle import source
from tenantflow.vocabulary import API_VERSION, DEFINITION, INSTANCE
from tenantflow_dev.fake_kube import FakeKube

pytestmark = pytest.mark.unit
NS = "tenant-acme"
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
CODE = "async def run(event, step):\n    return 1\n"


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": DEFINITION,
        "metadata": {"name": "flow", "namespace": NS, "uid": "uid-flow", "generation": 1},
        "spec": {"source": {"inline": CODE}, **spec},
    }


def observed(revisions: list[dict[str, Any]] | None = None, **spec: Any) -> definition.Observed:
    return definition.Observed(
        body=body(**spec),
        code=source.Code.single(CODE),
        problem="",
        revisions=revisions or [],
        instances=[],
        now=NOW,
    )


def test_new_code_plans_revision_one_and_the_same_code_plans_nothing_new() -> None:
    first = definition.plan(observed())
    assert first.create is not None and first.create["revision"] == 1
    assert first.status["activeRevision"] == 1 and first.changed
    assert definition.plan(observed()) == first, "pure: the same reads, the same plan"
    again = definition.plan(observed([first.create]))
    assert again.create is None and again.status["latestRevision"] == 1


def test_a_pin_to_a_revision_that_does_not_exist_is_a_stalled_plan() -> None:
    p = definition.plan(observed(pinnedRevision=7))
    assert not p.check.ok and p.check.reason == "PinnedRevisionNotFound"
    stalled = next(c for c in p.status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and "spec.pinnedRevision 7" in stalled["message"]


async def test_its_instances_are_read_by_field_selector() -> None:
    kube = FakeKube()
    kube.put(body())
    for name, workflow in (("mine", "flow"), ("other", "another")):
        kube.put(
            {
                "apiVersion": API_VERSION,
                "kind": INSTANCE,
                "metadata": {"name": name, "namespace": NS},
                "spec": {"workflowRef": {"name": workflow}},
            }
        )
    o = await definition.observe(kube, f"{NS}/flow", NOW)
    assert o is not None and [i["metadata"]["name"] for i in o.instances] == ["mine"]
    done = await definition.reconcile(kube, EventRecorder(kube), Persist(kube), f"{NS}/flow", NOW)
    assert done.written and ("create", "ControllerRevision", "flow") in [
        (verb, kind, name.split("-")[0]) for verb, kind, name in kube.calls
    ]
