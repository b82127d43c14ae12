"""One shape per thing that crosses a boundary: the engine's journal record, the status's
step entry and its CRD schema agree field for field; so do the conditions the operator
writes and the Condition the CRDs define."""

from __future__ import annotations

import datetime as dt

from tenantflow import conditions
from tenantflow.api.common import Condition
from tenantflow.api.instance import StepStatus
from tenantflow.engine.journal import StepKind, StepRecord, StepState

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _aliases(model: type[Condition] | type[StepStatus]) -> set[str]:
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
