"""Plans written at runtime, the engine's part (issue 38.5): `step.child(..., source=)`
asks for the source once, until the journal holds the revision the operator recorded it
as; then every replay asks for that revision and never for the source again. What crosses
the sandbox boundary is bounded, in Python and in TypeScript alike."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tenantflow.engine import Complete, Errored, Waiting, advance
from tenantflow.engine.children import (
    MAX_SOURCES_PER_ADVANCE,
    ChildResult,
    ChildSource,
    ChildStart,
    child_name,
)
from tenantflow.engine.journal import StepRecord, StepState
from tenantflow.engine.typescript import GuestCode, typescript_workflow
from tenantflow.engine.wire import children_from_wire, outcome_from_wire, outcome_to_wire
from tenantflow.sdk.errors import StepError
from tenantflow.vocabulary import MAX_CODE_BYTES

pytestmark = pytest.mark.unit

PLAN = "async def run(event, step):\n    return await step.do('a', lambda: 1)\n"
SOURCE = {"files": {"plan.py": PLAN}, "main": "plan"}


async def agent(event: Any, step: Any) -> Any:
    return await step.child("plan", "agent-plan", {"goal": "g"}, source=SOURCE)


def _waiting(wf: Any, journal: list[StepRecord] | None = None) -> Waiting:
    outcome = advance(wf, instance_id="agent-1", journal=journal or []).outcome
    assert isinstance(outcome, Waiting), outcome
    return outcome


def test_the_first_start_carries_the_source_and_crosses_the_boundary() -> None:
    outcome = _waiting(agent)
    (start,) = outcome.children
    assert start == ChildStart(
        "plan",
        child_name("agent-1", "plan"),
        "agent-plan",
        None,
        {"goal": "g"},
        ChildSource({"plan.py": PLAN}, "plan"),
    )
    assert outcome_from_wire(outcome_to_wire(outcome)) == outcome


def test_once_the_revision_is_journaled_no_replay_asks_for_the_source_again() -> None:
    first = advance(agent, instance_id="agent-1")
    (entry,) = first.journal
    assert entry.state is StepState.WAITING and entry.revision is None
    entry.revision = 4  # what the operator records when it wrote (or found) the revision
    for _ in range(3):  # every later advance, however many
        (start,) = _waiting(agent, first.journal).children
        assert (start.revision, start.source) == (4, None)
        assert start.name == child_name("agent-1", "plan")  # the same child, never a second
    done = advance(
        agent,
        instance_id="agent-1",
        journal=first.journal,
        children={"plan": ChildResult("Complete", output=1)},
    )
    assert isinstance(done.outcome, Complete) and done.outcome.output == 1
    assert done.journal[0].to_dict()["revision"] == 4
    again = advance(agent, instance_id="agent-1", journal=done.journal)  # replayed: no start
    assert isinstance(again.outcome, Complete) and again.outcome.output == 1


def test_a_source_over_the_caps_is_a_step_failure_the_parent_can_catch() -> None:
    big = {"files": {"plan.py": "#" * (MAX_CODE_BYTES + 1)}, "main": "plan"}
    many = {"files": {f"m{i}.py": "" for i in range(65)}, "main": "m0"}

    async def wf(event: Any, step: Any) -> Any:
        caught = []
        for name, source in (("big", big), ("many", many)):
            try:
                await step.child(name, "agent-plan", source=source)
            except StepError as exc:
                caught.append((exc.error_name, exc.error_message))
        return caught

    out = advance(wf, instance_id="agent-1")
    assert isinstance(out.outcome, Complete), out.outcome
    (big_error, many_error) = out.outcome.output
    assert big_error[0] == many_error[0] == "SourceTooLarge"
    assert f"{MAX_CODE_BYTES + 1} bytes" in big_error[1] and "65 file(s)" in many_error[1]
    assert [r.child for r in out.journal] == [None, None]  # no child was ever named


@pytest.mark.parametrize(
    ("source", "revision", "problem"),
    [
        ("async def run(event, step): ...", None, "source must be a dict"),
        ({"files": {}}, None, "non-empty dict"),
        ({"files": {"plan.py": 1}}, None, "non-empty dict"),
        ({"files": {"plan.py": PLAN}, "main": "../x"}, None, "source main"),
        ({"files": {"plan.py": PLAN}, "entrypoint": "go"}, None, "not ['entrypoint']"),
        (SOURCE, 2, "a source or a revision, not both"),
    ],
)
def test_a_malformed_source_fails_the_instance_naming_the_step(
    source: Any, revision: int | None, problem: str
) -> None:
    async def wf(event: Any, step: Any) -> Any:
        return await step.child("plan", "agent-plan", source=source, revision=revision)

    out = advance(wf, instance_id="agent-1")
    assert isinstance(out.outcome, Errored)
    assert out.outcome.error["name"] == "InvalidStepOptions"
    assert out.outcome.error["step"] == "plan" and problem in out.outcome.error["message"]


def test_the_sources_one_advance_carries_are_capped_the_rest_wait_their_turn() -> None:
    text = "#" * (MAX_CODE_BYTES - 100)  # each under the cap, ten of them over the advance's

    async def fan_out(event: Any, step: Any) -> Any:
        return await asyncio.gather(
            *(
                step.child(f"p{i}", "plans", source={"files": {"plan.py": f"{text}{i}"}})
                for i in range(10)
            )
        )

    first = advance(fan_out, instance_id="agent-1")
    starts = first.outcome.children if isinstance(first.outcome, Waiting) else ()
    carried = len(starts)
    assert 0 < carried < 10
    assert sum(s.source.size for s in starts if s.source) <= MAX_SOURCES_PER_ADVANCE
    for i, rec in enumerate(first.journal):  # the operator records those it was handed
        if i < carried:
            rec.revision = i + 1
    # the next advance: those are pinned (no source), and the budget goes to the next ones
    again = _waiting(fan_out, first.journal).children
    assert [(s.revision, s.source) for s in again[:carried]] == [
        (i, None) for i in range(1, carried + 1)
    ]
    assert again[carried:] and all(s.source is not None for s in again[carried:])


@pytest.mark.parametrize(
    "forged",
    [
        {"source": {"files": {"plan.py": "#" * (MAX_CODE_BYTES + 1)}}},
        {"source": {"files": {f"m{i}.py": "" for i in range(65)}}},
        {"source": {"files": {"x" * 200 + ".py": ""}}},
        {"source": {"files": "plan.py"}},
        {"source": {"files": {"plan.py": PLAN}, "main": "a/b"}},
        {"source": {"files": {"plan.py": PLAN}}, "revision": 1},
    ],
)
def test_forged_sources_are_refused_at_the_boundary(forged: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        children_from_wire([{"step": "c", "name": "x", "definition": "plans", **forged}])


TS_AGENT = """
export async function run(event, step, env) {
  const source = { files: { "plan.ts": event.payload.plan }, main: "plan" };
  const a = await step.child("one", { definition: "plans", source, params: { n: 1 } });
  const b = await step.child("two", "plans", { n: 2 }, { source });
  return [a, b];
}
"""


def test_typescript_hands_a_plan_to_a_child_in_either_form(tmp_path: Any) -> None:
    from tenantflow.storage.database import TenantDatabase

    fn = typescript_workflow(
        GuestCode({"workflow.ts": TS_AGENT}, "workflow.ts", heap_bytes=256 << 20)
    )
    plan = "export async function run(event, step) { return event.payload.n; }"
    db = TenantDatabase(tmp_path / "tenant.sqlite3")
    try:
        first = advance(fn, params={"plan": plan}, instance_id="agent-1", db=db)
        assert isinstance(first.outcome, Waiting), first.outcome
        (start,) = first.outcome.children
        assert (start.definition, start.params, start.revision) == ("plans", {"n": 1}, None)
        assert start.source == ChildSource({"plan.ts": plan}, "plan")
        first.journal[0].revision = 1
        second = advance(
            fn,
            params={"plan": plan},
            instance_id="agent-1",
            db=db,
            journal=first.journal,
            children={"one": ChildResult("Complete", output=1)},
        )
        assert isinstance(second.outcome, Waiting), second.outcome
        (start,) = second.outcome.children
        assert (start.step, start.params, start.revision) == ("two", {"n": 2}, None)
        assert start.source == ChildSource({"plan.ts": plan}, "plan")
    finally:
        db.close()
