"""Every example workflow runs to the expected end on the local engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tenantflow.lifecycle.source import Code
from tenantflow.testing import WorkflowSource, WorkflowTestEnv

pytestmark = pytest.mark.unit
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
APPROVAL = [(60, "approved", {"by": "bob"})]


def instances() -> list[tuple[str, str | WorkflowSource, str, Any]]:
    """(instance name, source, entrypoint, params) for every example instance."""
    docs = [
        d
        for p in sorted(EXAMPLES.rglob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text())
        if d and "kind" in d  # not kustomize's own files
    ]
    configmaps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    definitions = {
        (d["metadata"].get("namespace"), d["metadata"]["name"]): d
        for d in docs
        if d["kind"] == "WorkflowDefinition"
    }

    def code(d: dict[str, Any]) -> tuple[str | WorkflowSource, str]:
        src = d["spec"]["source"]
        ref = src.get("configMapRef") or {}
        text = src.get("inline") or configmaps[ref["name"]][ref["key"]]
        entrypoint = d["spec"].get("entrypoint", "run")
        if src.get("language", "python") == "python":
            return text, entrypoint
        files = dict(Code.single(text, src["language"]).files)  # workflow.ts
        return WorkflowSource(files, "workflow", entrypoint, name=d["metadata"]["name"]), entrypoint

    return [
        (
            d["metadata"]["name"],
            *code(definitions[d["metadata"].get("namespace"), d["spec"]["workflowRef"]["name"]]),
            d["spec"].get("params"),
        )
        for d in docs
        if d["kind"] == "WorkflowInstance"
    ]


EXPECTED: dict[str, Any] = {
    "build-1": lambda out: out["deployed"] is True,
    "agent-run-1": lambda out: out["approvedBy"] == "bob" and len(out["published"]) == 3,
    "order-1001": lambda out: out == {"status": "shipped", "tracking": "TRK-1001"},
    "sync-1": lambda out: out == {"rounds": 3, "mirrored": 25},
    "release-1": lambda out: out["images"]["worker"] == "registry.local/worker:v1.4.0",
    "review-1": lambda out: (
        out == {"email": "ada@example.test", "files": 3, "reviewed": 3, "attempts": 2}
    ),
}


def definitions() -> dict[str, str]:
    """Every example definition's inline source, by name: what `step.child` may start."""
    return {
        d["metadata"]["name"]: d["spec"]["source"]["inline"]
        for p in sorted(EXAMPLES.rglob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text())
        if d and d.get("kind") == "WorkflowDefinition" and "inline" in d["spec"]["source"]
    }


# instances that end failed on purpose, after compensating (their test is below)
COMPENSATED = {"order-1002"}
PLANNING = {"agent-1"}  # waits for a revised plan by event (its test is below)


def test_every_example_instance_has_an_expectation() -> None:
    assert sorted(name for name, *_ in instances()) == sorted({*EXPECTED, *COMPENSATED, *PLANNING})


@pytest.mark.parametrize(
    ("name", "source", "entrypoint", "params"),
    [i for i in instances() if i[0] not in COMPENSATED | PLANNING],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else "",
)
def test_example_completes(name: str, source: str, entrypoint: str, params: Any) -> None:
    env = WorkflowTestEnv(workflows=definitions())
    result = env.run_sync(source, params, APPROVAL, entrypoint=entrypoint)
    assert result.phase == "Complete", result.error
    assert EXPECTED[name](result.output), result.output


def test_the_saga_compensates_in_reverse_order() -> None:
    _, source, entrypoint, params = next(i for i in instances() if i[0] == "order-1002")
    result = WorkflowTestEnv().run_sync(source, params, entrypoint=entrypoint)
    assert result.phase == "Errored" and result.error["step"] == "ship"
    assert [s["name"] for s in result.steps] == [
        "reserve-stock",
        "charge-card",
        "ship",
        "compensation",
        "rollback:charge-card",
        "rollback:reserve-stock",
    ]
    assert result.step("rollback:charge-card")["output"] == {"refunded": 7, "order": "1002"}
    assert result.step("rollback:reserve-stock")["output"] == {
        "released": ["gadget"],
        "because": "no shipping address",
    }


def agent() -> tuple[str, Any]:
    """The example agent's source and its instance's params."""
    _, source, _, params = next(i for i in instances() if i[0] == "agent-1")
    return source, params


def test_the_agent_runs_its_plan_then_the_revised_one() -> None:
    source, params = agent()
    revised = json.loads((EXAMPLES / "agent-plans" / "revised-plan.json").read_text())
    result = WorkflowTestEnv().run_sync(
        source, params, [(600, "revised-plan", revised)], instance_id="agent-1"
    )
    assert result.phase == "Complete", result.error
    first = {
        "summary": "summarise this week's incidents: 3 incidents",
        "incidents": ["INC-7", "INC-9", "INC-12"],
    }
    assert result.output == {
        "first": first,
        "second": {
            "summary": f"{first['summary']}, worst first: INC-9",
            "incidents": ["INC-9", "INC-7", "INC-12"],
        },
    }
    plans = [result.step(s)["child"] for s in ("run-plan-1", "run-plan-2")]
    assert [result.children[p].phase for p in plans] == ["Complete", "Complete"]
    assert [s["name"] for s in result.children[plans[1]].steps] == [
        "rank",
        "let-the-owners-answer",
        "summarise",
    ]


def test_a_revised_plan_that_does_not_parse_is_a_failed_step_the_agent_catches() -> None:
    source, params = agent()
    broken = {"plan": "async def run(event, step, env)\n    return 1\n"}
    result = WorkflowTestEnv().run_sync(
        source, params, [(600, "revised-plan", broken)], instance_id="agent-1"
    )
    assert result.phase == "Complete", result.error
    assert result.output["second"] is None and result.output["failed"] == "SyntaxError"
