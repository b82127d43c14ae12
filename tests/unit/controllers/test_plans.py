"""Plans written at runtime through the real controllers (issue 38.5; in-memory API, the
real engine in-process): a source handed to `step.child` becomes a revision of a
definition written at runtime, the child runs pinned to it, a replay writes nothing
again, and what is wrong with a plan is the child step's clear failure."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tenantflow.controllers import definition
from tenantflow.controllers.instances.plans import Plans
from tenantflow.controllers.persist import Persist
from tenantflow.controllers.revision_cache import RevisionCache
from tenantflow.engine.children import ChildSource, child_name
from tenantflow.kube.events import EventRecorder
from tenantflow.kube.revisions import list_revisions
from tenantflow.vocabulary import (
    API_VERSION,
    DEFINITION,
    DEFINITION_LABEL,
    INSTANCE,
    WRITTEN_AT_RUNTIME_LABEL,
    WRITTEN_BY_ANNOTATION,
    Phase,
)
from tenantflow_dev.fake_kube import FakeKube
from tests.unit.controllers.harness import NS, Harness
from tests.unit.controllers.test_children import pump

pytestmark = pytest.mark.unit
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "agent-plans"
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def example() -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The example's agent source, its instance's params and the revised plan's event."""
    agent, instance = yaml.safe_load_all((EXAMPLE / "workflow.yaml").read_text())
    revised = json.loads((EXAMPLE / "revised-plan.json").read_text())
    return agent["spec"]["source"]["inline"], instance["spec"]["params"], revised


def revisions_of(h: Harness, name: str) -> list[dict[str, Any]]:
    """The definition's ControllerRevisions, oldest first."""
    return sorted(
        (
            o
            for (_, kind, _, _), o in h.kube.objects.items()
            if kind == "ControllerRevision"
            and o["metadata"]["labels"].get(DEFINITION_LABEL) == name
        ),
        key=lambda r: int(r["revision"]),
    )


def instances(h: Harness) -> list[str]:
    return sorted(
        o["metadata"]["name"] for (_, kind, _, _), o in h.kube.objects.items() if kind == INSTANCE
    )


async def reconcile(h: Harness, name: str) -> dict[str, Any]:
    """The definition controller's reconcile, as the definition's watch event would bring."""
    await definition.reconcile(h.kube, EventRecorder(h.kube), Persist(h.kube), f"{NS}/{name}")
    return dict(h.kube.read(API_VERSION, DEFINITION, name, NS)["status"])


async def send(h: Harness, instance: str, type_: str, payload: Any) -> None:
    body = h.watched(instance)
    events = [*(body["spec"].get("events") or []), {"type": type_, "payload": payload}]
    await h.kube.patch(API_VERSION, INSTANCE, instance, NS, {"spec": {"events": events}})
    h.controller.on_event("MODIFIED", h.watched(instance))
    await pump(h)


async def test_the_example_agent_runs_its_plan_as_revision_1_and_the_revised_one_as_2(
    tmp_path: Path,
) -> None:
    agent, params, revised = example()
    h = Harness.new(tmp_path)
    await h.define("agent", agent)
    h.start("agent-1", "agent", params=params)
    await h.controller.adopt(lambda namespace: True)
    await pump(h)
    st = h.status("agent-1")
    assert st["phase"] == Phase.WAITING and st["waitingFor"]["eventType"] == "revised-plan"

    # the plan is revision 1 of a definition written at runtime, owned by no instance
    plans = h.kube.read(API_VERSION, DEFINITION, "agent-1-plan", NS)
    assert plans["metadata"]["labels"] == {WRITTEN_AT_RUNTIME_LABEL: "true"}
    assert plans["metadata"]["annotations"][WRITTEN_BY_ANNOTATION] == "agent-1"
    assert "ownerReferences" not in plans["metadata"]
    assert plans["spec"]["source"] == {"files": {"plan.py": params["plan"]}, "main": "plan"}
    (rev1,) = revisions_of(h, "agent-1-plan")
    assert rev1["revision"] == 1 and rev1["data"]["files"] == {"plan.py": params["plan"]}
    assert rev1["metadata"]["annotations"][WRITTEN_BY_ANNOTATION] == "agent-1"

    # its child ran pinned to it, and the parent's journal says which revision that was
    first = next(s for s in st["steps"] if s["name"] == "run-plan-1")
    assert (first["kind"], first["state"], first["revision"]) == ("child", "Complete", 1)
    child = h.watched(first["child"])
    assert child["spec"]["workflowRef"] == {"name": "agent-1-plan", "revision": 1}
    assert child["status"]["phase"] == Phase.COMPLETE and child["status"]["revision"] == 1
    status = await reconcile(h, "agent-1-plan")  # its own controller: Ready, revision listed
    assert status["latestRevision"] == status["activeRevision"] == 1
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["status"] == "True"
    assert len(revisions_of(h, "agent-1-plan")) == 1, "the reconcile wrote no revision of its own"

    revised["plan"] = revised["plan"].replace("'1h'", "'0s'")  # (no virtual clock here)
    await send(h, "agent-1", "revised-plan", revised)
    st = h.status("agent-1")
    assert st["phase"] == Phase.COMPLETE, st
    assert st["output"]["second"]["summary"].endswith("worst first: INC-9")
    second = next(s for s in st["steps"] if s["name"] == "run-plan-2")
    assert second["revision"] == 2
    assert h.watched(second["child"])["spec"]["workflowRef"]["revision"] == 2
    assert [r["revision"] for r in revisions_of(h, "agent-1-plan")] == [1, 2]
    plans = h.kube.read(API_VERSION, DEFINITION, "agent-1-plan", NS)
    assert plans["spec"]["source"]["files"] == {"plan.py": revised["plan"]}
    status = await reconcile(h, "agent-1-plan")
    assert [r["revision"] for r in status["revisions"]] == [1, 2]
    assert status["activeRevision"] == 2
    assert ("Normal", "RevisionWritten") in h.events()

    # drives and replays after the end write nothing
    h.kube.calls.clear()
    await h.drive(f"{NS}/agent-1", times=3)
    assert h.kube.writes("ControllerRevision") == [] and h.kube.writes(DEFINITION) == []
    assert instances(h) == sorted(["agent-1", first["child"], second["child"]])


async def test_a_lost_status_write_writes_no_second_revision_and_starts_no_second_child(
    tmp_path: Path,
) -> None:
    """The operator dies after it recorded the revision and started the child, before the
    parent's status (with the revision journaled) was written: the next drive starts
    from the journal without it, and finds the same revision and the same child. A budget
    of one proves nothing was spent again."""
    agent, params, _ = example()
    h = Harness.new(tmp_path, maxRuntimeRevisionsPerHour=1)
    await h.define("agent", agent)
    h.start("agent-1", "agent", params=params)
    before = h.watched("agent-1")
    await h.drive(f"{NS}/agent-1")
    written = h.status("agent-1")
    (entry,) = [s for s in written["steps"] if s["name"] == "run-plan-1"]
    assert entry["revision"] == 1 and entry["state"] == "Waiting"
    h.kube.put(before)  # as if that status write had never happened
    h.kube.calls.clear()
    await h.drive(f"{NS}/agent-1")
    assert h.kube.writes("ControllerRevision") == []
    creates = [c for c in h.kube.calls if c[0] == "create"]
    assert creates == [("create", INSTANCE, child_name("agent-1", "run-plan-1"))]  # a 409
    assert len(revisions_of(h, "agent-1-plan")) == 1
    (entry,) = [s for s in h.status("agent-1")["steps"] if s["name"] == "run-plan-1"]
    assert entry["revision"] == 1 and "error" not in entry
    assert instances(h) == sorted(["agent-1", child_name("agent-1", "run-plan-1")])


PARENT = """
from tenantflow.sdk import StepError

async def run(event, step, env):
    out = []
    for i, plan in enumerate(event["payload"]["plans"]):
        try:
            result = await step.child(
                f"plan-{i}", plan.get("definition", "plans"), {"n": i}, source=plan["source"]
            )
            out.append({"ok": result})
        except StepError as exc:
            out.append({"failed": exc.error_name, "message": exc.error_message})
    return out
"""


def plan(text: str, file: str = "plan.py", **more: Any) -> dict[str, Any]:
    return {"source": {"files": {file: text}, "main": file.split(".")[0]}, **more}


GOOD = "async def run(event, step):\n    return await step.do('n', lambda: event['payload']['n'])\n"


async def run_parent(h: Harness, plans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    await h.define("parent", PARENT)
    h.start("p", "parent", params={"plans": plans})
    await h.controller.adopt(lambda namespace: True)
    await pump(h, rounds=40)
    st = h.status("p")
    assert st["phase"] == Phase.COMPLETE, st
    return list(st["output"])


@pytest.mark.parametrize(
    ("bad", "reason", "says"),
    [
        (plan("async def run(event, step)\n    return 1\n"), "SyntaxError", "line 1"),
        (plan("async def go(event, step):\n    return 1\n"), "EntrypointMissing", "'run'"),
        (plan("def run(event, step):\n    return 1\n"), "EntrypointSignature", "async def"),
        (plan(GOOD, file="json.py"), "InvalidFileName", "json.py"),
        (plan(GOOD, definition="build"), "DefinitionNotWrittenAtRuntime", "build"),
    ],
)
async def test_what_is_wrong_with_a_plan_is_the_child_steps_clear_failure(
    tmp_path: Path, bad: dict[str, Any], reason: str, says: str
) -> None:
    h = Harness.new(tmp_path)
    await h.define("build", GOOD)  # a definition applied by a person (or Git)
    out = await run_parent(h, [bad, plan(GOOD)])
    assert out[0]["failed"] == reason and says in out[0]["message"], out[0]
    assert out[1] == {"ok": 1}, "the parent goes on: the next plan runs"
    assert [r["revision"] for r in revisions_of(h, "plans")] == [1]
    assert len(revisions_of(h, "build")) == 1, "a plan never revises reviewed code"
    assert ("Warning", reason) in h.events()


async def test_the_budget_of_revisions_is_the_tenants_and_an_unchanged_plan_costs_none(
    tmp_path: Path,
) -> None:
    h = Harness.new(tmp_path, maxRuntimeRevisionsPerHour=2)
    other = GOOD.replace("step.do('n'", "step.do('m'")
    third = GOOD.replace("step.do('n'", "step.do('k'")
    out = await run_parent(h, [plan(GOOD), plan(GOOD), plan(other), plan(GOOD), plan(third)])
    assert out[:4] == [{"ok": 0}, {"ok": 1}, {"ok": 2}, {"ok": 3}]
    assert out[4]["failed"] == "RuntimeRevisionBudgetExceeded"
    assert "spec.limits.maxRuntimeRevisionsPerHour" in out[4]["message"]
    steps = {s["name"]: s for s in h.status("p")["steps"]}
    assert [steps[f"plan-{i}"].get("revision") for i in range(5)] == [1, 1, 2, 1, None]
    assert [r["revision"] for r in revisions_of(h, "plans")] == [1, 2]


async def test_a_tenant_with_no_budget_writes_no_plan(tmp_path: Path) -> None:
    h = Harness.new(tmp_path, maxRuntimeRevisionsPerHour=0)
    (out,) = await run_parent(h, [plan(GOOD)])
    assert out["failed"] == "RuntimeRevisionBudgetExceeded"
    assert "maxRuntimeRevisionsPerHour is 0" in out["message"]
    assert h.kube.read(API_VERSION, DEFINITION, "plans", NS) is None


async def test_a_typescript_plan_runs_in_the_sandbox_as_any_child(tmp_path: Path) -> None:
    h = Harness.new(tmp_path)
    ts = (
        "export async function run(event, step) {\n"
        "  return await step.do('n', async () => event.payload.n * 10);\n"
        "}\n"
    )
    out = await run_parent(h, [plan(ts, file="plan.ts"), plan(ts, file="plan.ts")])
    assert out == [{"ok": 0}, {"ok": 10}]
    (rev,) = revisions_of(h, "plans")
    assert rev["data"]["files"] == {"plan.ts": ts} and rev["data"]["main"] == "plan"


class YieldingKube(FakeKube):
    """An API whose answers arrive after other tasks ran, as a real one's do: what was
    read may be stale by the time the reader acts on it."""

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        found = await super().get(*args, **kwargs)
        await asyncio.sleep(0)
        return found

    async def list(self, *args: Any, **kwargs: Any) -> Any:
        found = await super().list(*args, **kwargs)
        await asyncio.sleep(0)
        return found


async def test_a_typescript_plan_that_does_not_parse_fails_the_step_with_its_line(
    tmp_path: Path,
) -> None:
    """The operator cannot parse TypeScript: the plan is recorded, and its first advance
    reports the error, which reaches the step as a failed child's does."""
    h = Harness.new(tmp_path)
    broken = "export async function run(event, step) {\n  return 1 +;\n}\n"
    (out,) = await run_parent(h, [plan(broken, file="plan.ts")])
    assert out["failed"] == "SyntaxError", out
    assert "at plans/plan.ts:2:" in out["message"]


async def test_revisions_are_numbered_one_at_a_time_by_concurrent_writers() -> None:
    """Two plans for one definition at once (asyncio.gather in a parent, or two parents)
    and the definition's own reconcile: each revision gets a number of its own."""
    kube, cache = YieldingKube(), RevisionCache()
    plans = Plans(kube, cache)
    sources = [ChildSource({"plan.py": f"{GOOD}# {i}\n"}, "plan") for i in range(5)]
    pinned = await asyncio.gather(
        *(
            plans.record(NS, "plans", s, writer=f"w{i}", per_hour=100, now=NOW)
            for i, s in enumerate(sources)
        )
    )
    assert sorted(p.revision for p in pinned if p.revision) == [1, 2, 3, 4, 5]
    numbers = [r["revision"] for r in await list_revisions(kube, NS, "plans")]
    assert sorted(numbers) == [1, 2, 3, 4, 5]
    async with cache.writing(NS, "plans"):  # the definition controller's reconcile holds it
        late = asyncio.ensure_future(
            plans.record(NS, "plans", sources[0], writer="w", per_hour=100, now=NOW)
        )
        await asyncio.sleep(0.01)
        assert not late.done(), "a writer waits for the lock"
    assert (await late).revision == 1  # the same source: the same revision


def test_an_unstarted_child_keeps_the_revision_its_spec_pins() -> None:
    """The definition controller trims old revisions, never one an unfinished instance
    runs, nor one a child was just created pinned to (before its first drive)."""
    instances_ = [
        {"spec": {"workflowRef": {"name": "plans", "revision": 3}}},  # not started yet
        {"spec": {"workflowRef": {"name": "plans"}}, "status": {"revision": 5}},
        {
            "spec": {"workflowRef": {"name": "plans", "revision": 7}},
            "status": {"phase": "Complete", "revision": 7},
        },
    ]
    assert definition._revisions_in_use(instances_) == {3, 5}
