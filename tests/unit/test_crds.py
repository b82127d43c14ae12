"""The checked-in CRDs are exactly what the models generate, and they are explainable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tenantflow.api.crd import KINDS, openapi_schema
from tenantflow.api.generate import main as generate

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
CHART_CRDS = ROOT / "charts" / "tenantflow" / "crds"


def test_checked_in_crds_match_the_models() -> None:
    assert generate([str(CRDS), str(CHART_CRDS), "--check"]) == 0, (
        "crds/ or the chart's crds/ drifted from the models: run `make crds`"
    )


def test_drift_is_detected(tmp_path: Path) -> None:
    assert generate([str(tmp_path)]) == 0
    victim = tmp_path / "tenants.yaml"
    victim.write_text(victim.read_text().replace("maxConcurrentInstances", "maxConcurrent"))
    assert generate([str(tmp_path), "--check"]) == 1


def _walk(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, sub in schema.get("properties", {}).items():
        out.append((f"{path}.{name}", sub))
        out += _walk(sub, f"{path}.{name}")
    if "items" in schema:
        out += _walk(schema["items"], f"{path}[]")
    return out


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_field_has_a_description_for_kubectl_explain(kind: Any) -> None:
    schema = openapi_schema(kind.model)
    missing = [
        p for p, s in _walk(schema, "") if not s.get("description") and p not in (".metadata",)
    ]
    assert missing == []


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_schemas_are_structural(kind: Any) -> None:
    """Every node has a type unless it preserves unknown fields (API server rule)."""
    schema = openapi_schema(kind.model)
    for path, node in _walk(schema, ""):
        assert "$ref" not in node and "anyOf" not in node, path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path


def test_spec_field_names_follow_the_contract() -> None:
    from tenantflow.api.instance import WorkflowInstance
    from tenantflow.api.tenant import TenantLimits

    limits = set(TenantLimits.model_json_schema(by_alias=True)["properties"])
    assert limits == {
        "maxConcurrentInstances",
        "maxInstanceStartsPerSecond",
        "maxStepsPerInstance",
        "maxStepTimeoutSeconds",
        "maxEventsPerSecond",
        "maxStorageOpsPerSecond",
        "storage",
        "maxRuntimeRevisionsPerHour",
    }
    spec = openapi_schema(WorkflowInstance)["properties"]["spec"]["properties"]
    assert set(spec) == {"workflowRef", "params", "suspend", "terminate", "events"}


def test_engine_journal_entries_validate_as_step_status() -> None:
    """The engine's StepRecord.to_dict is exactly the CRD's status.steps[] shape."""
    import datetime as dt

    from tenantflow.api.instance import StepStatus
    from tenantflow.engine import StepKind, StepRecord, StepState

    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rec = StepRecord(
        "s",
        StepKind.DO,
        StepState.RETRYING,
        attempts=1,
        started_at=t,
        next_attempt_at=t,
        error={"name": "E", "message": "m"},
    )
    assert StepStatus.model_validate(rec.to_dict()).wire() == rec.to_dict()


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_served_version_has_one_schema_and_one_is_stored(kind: Any) -> None:
    """The CRDs convert with strategy None (no webhook): the API server only rewrites an
    object's apiVersion, which is right only while every served version has the same
    schema, printer columns and selectable fields. A version with its own schema needs a
    conversion webhook first."""
    from tenantflow.api.crd import crd
    from tenantflow.vocabulary import DEPRECATED_VERSIONS, SERVED_VERSIONS, VERSION

    spec = crd(kind)["spec"]
    assert spec["conversion"] == {"strategy": "None"}
    versions = {v["name"]: v for v in spec["versions"]}
    assert list(versions) == list(SERVED_VERSIONS) and VERSION in versions
    assert [n for n, v in versions.items() if v["storage"]] == [VERSION]
    shape = lambda v: {k: x for k, x in v.items() if k not in SHAPE_FREE}  # noqa: E731
    assert all(shape(v) == shape(versions[VERSION]) for v in versions.values())
    for name, version in versions.items():
        assert version["served"] is True
        assert version.get("deprecated", False) is (name in DEPRECATED_VERSIONS)
        if name in DEPRECATED_VERSIONS:
            assert VERSION in version["deprecationWarning"], "the warning names the way out"


SHAPE_FREE = {"name", "storage", "deprecated", "deprecationWarning"}
