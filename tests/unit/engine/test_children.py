"""step.child through the real engine and WorkflowTestEnv: results, failures, gather,
durable names, the parent-close policy and what crosses the sandbox boundary."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from tenantflow.engine import Waiting, advance
from tenantflow.engine.children import ChildResult, ChildStart, child_name
from tenantflow.engine.wire import children_from_wire, outcome_from_wire, outcome_to_wire
from tenantflow.sdk.errors import StepError
from tenantflow.testing import WorkflowTestEnv

pytestmark = pytest.mark.unit


async def build(event: Any, step: Any) -> Any:
    svc = event["payload"]["svc"]
    await step.sleep("compile", "10m")
    if svc == "broken":
        await step.do("fail", lambda: 1 / 0, retries={"limit": 0})
    return {"image": f"{svc}:1"}


async def slow(event: Any, step: Any) -> Any:
    await step.sleep("forever", "30d")
    return "late"


def test_a_child_result_is_the_step_output_and_children_run_side_by_side() -> None:
    async def pipeline(event: Any, step: Any) -> Any:
        images = await asyncio.gather(
            *(step.child(f"build-{s}", "build", {"svc": s}) for s in ("api", "web", "db"))
        )
        return [i["image"] for i in images]

    env = WorkflowTestEnv(workflows={"build": build})
    result = env.run_sync(pipeline, instance_id="ci-1")
    assert result.phase == "Complete", result.error
    assert result.output == ["api:1", "web:1", "db:1"]
    # gathered children wait side by side: 10 minutes of virtual time, not 30
    assert result.elapsed == dt.timedelta(minutes=10)
    names = {child_name("ci-1", f"build-{s}") for s in ("api", "web", "db")}
    assert set(result.children) == names
    assert all(c.phase == "Complete" for c in result.children.values())
    entry = result.step("build-api")
    assert entry["kind"] == "child" and entry["child"] == child_name("ci-1", "build-api")
    assert entry["output"] == {"image": "api:1"}


def test_a_failed_child_is_a_step_error_in_the_parent() -> None:
    async def pipeline(event: Any, step: Any) -> Any:
        try:
            await step.child("build", "build", {"svc": "broken"})
        except StepError as exc:
            return {"caught": exc.error_name, "message": exc.error_message}
        return "not reached"

    result = WorkflowTestEnv(workflows={"build": build}).run_sync(pipeline, instance_id="p")
    assert result.phase == "Complete"
    assert result.output["caught"] == "ZeroDivisionError"
    assert child_name("p", "build") in result.output["message"]
    assert result.step("build")["state"] == "Errored"


def test_an_unknown_definition_fails_the_child_and_so_the_step() -> None:
    async def pipeline(event: Any, step: Any) -> Any:
        return await step.child("x", "nope")

    result = WorkflowTestEnv().run_sync(pipeline)
    assert result.phase == "Errored"
    assert result.error is not None and result.error["name"] == "DefinitionNotFound"
    assert result.error["step"] == "x"


def test_a_parent_that_finishes_terminates_the_children_it_still_awaited() -> None:
    async def impatient(event: Any, step: Any) -> Any:
        late = asyncio.ensure_future(step.child("slow", "slow"))
        await step.sleep("nap", "1h")
        late.cancel()
        return "done without it"

    result = WorkflowTestEnv(workflows={"slow": slow}).run_sync(impatient, instance_id="p")
    assert result.phase == "Complete"
    (child,) = result.children.values()
    assert child.phase == "Terminated"


def test_child_names_are_derived_stable_and_valid() -> None:
    first = child_name("ci-1", "Build API/v2")
    assert first == child_name("ci-1", "Build API/v2")  # a repeated start finds the same
    assert first != child_name("ci-1", "Build API/v2", epoch=1)  # a reset starts anew
    assert first != child_name("ci-1", "build-api-v2")  # the slug alone does not decide
    assert first.startswith("ci-1-build-api-v2-")
    long = child_name("p" * 253, "s" * 256)
    assert len(long) <= 253 and long[0].isalnum() and long[-1].isalnum()


def _waiting(wf: Any, **kwargs: Any) -> Waiting:
    outcome = advance(wf, instance_id="parent", **kwargs).outcome
    assert isinstance(outcome, Waiting)
    return outcome


def test_the_start_request_crosses_the_boundary_as_json_and_back() -> None:
    async def wf(event: Any, step: Any) -> Any:
        return await step.child("c", "build", {"svc": "api"}, revision=3)

    outcome = _waiting(wf)
    assert outcome.waiting_for == {"kind": "child", "step": "c", "child": child_name("parent", "c")}
    assert outcome_from_wire(outcome_to_wire(outcome)) == outcome
    (start,) = outcome.children
    assert start == ChildStart("c", child_name("parent", "c"), "build", 3, {"svc": "api"})


def test_the_next_advance_gets_the_result_and_never_asks_again() -> None:
    async def wf(event: Any, step: Any) -> Any:
        return await step.child("c", "build")

    first = advance(wf, instance_id="parent")
    done = advance(
        wf,
        instance_id="parent",
        journal=first.journal,
        children={"c": ChildResult("Complete", output={"ok": True})},
    )
    assert done.outcome.__class__.__name__ == "Complete"
    # replayed later (no results handed over): the journal answers
    again = advance(wf, instance_id="parent", journal=done.journal)
    assert getattr(again.outcome, "output", None) == {"ok": True}


@pytest.mark.parametrize(
    ("definition", "params", "problem"),
    [
        ("../other-tenant", None, "definition must be the name"),
        ("Build", None, "definition must be the name"),
        ("build", {"big": "x" * 300_000}, "over 262144"),
        ("build", {"n": float("nan")}, "plain JSON"),
    ],
)
def test_bad_child_arguments_fail_the_instance_naming_the_step(
    definition: str, params: Any, problem: str
) -> None:
    async def wf(event: Any, step: Any) -> Any:
        return await step.child("c", definition, params)

    result = WorkflowTestEnv().run_sync(wf)
    assert result.phase == "Errored" and result.error is not None
    assert result.error["step"] == "c" and problem in result.error["message"]


@pytest.mark.parametrize(
    "forged",
    [
        [{"step": "c", "name": "x", "definition": "../../kube-system/x"}],
        [{"step": "c", "name": "x", "definition": "ok", "revision": True}],
        [{"step": "c", "name": "x", "definition": "ok", "params": {"a": "b" * 300_000}}],
        [{"step": "c", "name": "x", "definition": "ok"}] * 2,
        [{"step": f"c{i}", "name": "x", "definition": "ok"} for i in range(1001)],
        "not a list",
    ],
)
def test_forged_start_requests_are_refused_at_the_boundary(forged: Any) -> None:
    """What tenant code could write into its answer instead of the engine's outcome."""
    with pytest.raises(ValueError):
        children_from_wire(forged)
