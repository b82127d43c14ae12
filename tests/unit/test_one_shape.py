"""One shape per thing that crosses a boundary: the engine's journal record, the status's
step entry and its CRD schema agree field for field; so do the conditions the operator
writes and the Condition the CRDs define; and so do the TypedDicts the hot path reads a
status through (tenantflow.shapes) and the pydantic models the CRDs are generated from."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import BaseModel

from tenantflow import conditions, shapes
from tenantflow.api.common import Condition
from tenantflow.api.instance import (
    AttemptFailure,
    ErrorInfo,
    StepStatus,
    WaitingFor,
    WorkflowInstanceStatus,
)
from tenantflow.engine.journal import StepKind, StepRecord, StepState

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _aliases(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


def test_a_journal_record_is_exactly_a_status_step_entry() -> None:
    full = StepRecord(
        name="s",
        kind=StepKind.EVENT,
        state=StepState.COMPLETE,
        attempts=2,
        started_at=NOW,
        finished_at=NOW,
        output={"x": 1},
        error={"name": "E", "message": "m"},
        until=NOW,
        next_attempt_at=NOW,
        event_type="go",
        event_index=0,
        child="parent-s-0123456789",
        revision=2,
        failures=[{"attempt": 1, "name": "E", "message": "m", "at": "2030-01-01T00:00:00Z"}],
        rollback=1,
    )
    entry = full.to_dict()
    # every field the engine writes is one the schema defines, and the other way round
    # (outputRef stands in for output when a result is offloaded)
    assert set(entry) | {"outputRef"} == _aliases(StepStatus)
    assert StepStatus.model_validate(entry).wire() | {"output": {"x": 1}} == entry
    assert StepRecord.from_dict(entry) == full


def test_the_enums_of_the_schema_are_the_engines() -> None:
    schema = StepStatus.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})

    def choices(field: str) -> list[str]:
        node = schema["properties"][field]
        node = defs[node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else node
        return list(node["enum"])

    assert choices("kind") == [k.value for k in StepKind]
    assert choices("state") == [s.value for s in StepState]


def test_the_conditions_written_are_the_conditions_defined() -> None:
    written = conditions.merge(
        None, [conditions.ConditionUpdate("Ready", True, "Fine", "all good")], generation=3, now=NOW
    )
    assert set(written[0]) == _aliases(Condition)
    assert Condition.model_validate(written[0]).wire() == written[0]


@pytest.mark.parametrize(
    ("typed", "model"),
    [
        (shapes.InstanceStatus, WorkflowInstanceStatus),
        (shapes.StepEntry, StepStatus),
        (shapes.ConditionEntry, Condition),
        (shapes.ErrorEntry, ErrorInfo),
        (shapes.AttemptFailureEntry, AttemptFailure),
        (shapes.WaitingForEntry, WaitingFor),
    ],
    ids=lambda t: t.__name__,
)
def test_each_typed_status_is_its_model_field_for_field(typed: Any, model: type[BaseModel]) -> None:
    """A field added to a model (so to the CRD) and not to the TypedDict the operator reads
    it through, or the other way round, fails here: mypy would not see the drift."""
    assert set(typed.__annotations__) == _aliases(model)
    assert not typed.__required_keys__, "a status grows field by field: every key optional"
