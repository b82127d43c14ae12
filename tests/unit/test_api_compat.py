"""Objects an earlier release stored keep meaning the same: a field on record in
tests/data/api-snapshot may not be removed, renamed or retyped (nor an enum lose a value)
without a conversion on record. Adding fields is fine: `make api-snapshot` records them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tenantflow.api import snapshot
from tenantflow.api.crd import KINDS, kind_named
from tenantflow.engine import journal

SNAPSHOTS = Path(__file__).resolve().parents[1] / "data" / "api-snapshot"


def recorded(plural: str) -> dict[str, Any]:
    return dict(json.loads((SNAPSHOTS / f"{plural}.json").read_text()))


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_no_field_on_record_was_removed_or_retyped(kind: Any) -> None:
    problems = snapshot.incompatible(recorded(kind.plural), snapshot.snapshot(kind))
    assert problems == [], (
        "stored objects hold these fields: keep them, or convert what older releases wrote "
        "and name the conversion in the snapshot's `conversions`"
    )


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_field_is_on_record(kind: Any) -> None:
    """Else a field added now could be removed later unnoticed."""
    assert snapshot.added(recorded(kind.plural), snapshot.snapshot(kind)) == [], (
        "run `make api-snapshot`"
    )


def test_the_journal_format_on_record_is_the_engines() -> None:
    assert recorded("workflowinstances")["journalVersion"] == journal.VERSION
    fields = recorded("workflowinstances")["fields"]
    assert fields["status.journalVersion"] == {"type": "integer"}
    assert {"status.steps[].name", "status.steps[].kind", "status.steps[].state"} <= set(fields)


def test_a_removed_a_renamed_and_a_retyped_field_are_caught() -> None:
    now = snapshot.snapshot(kind_named("WorkflowInstance"))
    changed = copy.deepcopy(now)
    fields = changed["fields"]
    fields["status.steps[].attemptCount"] = fields.pop("status.steps[].attempts")  # renamed
    del fields["status.stepCount"]  # removed
    fields["status.revision"] = {"type": "string"}  # retyped
    fields["status.phase"]["enum"].remove("Paused")  # an enum lost a value
    problems = snapshot.incompatible(now, changed)
    assert len(problems) == 4, problems
    assert any("status.steps[].attempts" in p and "removed or renamed" in p for p in problems)
    assert any("status.revision changed type from integer to string" in p for p in problems)
    assert any("no longer allows Paused" in p for p in problems)
    # ... and the new name is an addition, which is fine
    assert snapshot.added(now, changed) == ["WorkflowInstance: status.steps[].attemptCount"]


def test_a_conversion_on_record_allows_the_change() -> None:
    now = snapshot.snapshot(kind_named("WorkflowInstance"))
    changed = copy.deepcopy(now)
    del changed["fields"]["status.stepCount"]
    on_record = {**now, "conversions": {"status.stepCount": "0.2.0: counted from steps"}}
    assert snapshot.incompatible(on_record, changed) == []


def test_the_writer_refuses_a_breaking_change_and_records_an_addition(tmp_path: Path) -> None:
    assert snapshot.main([str(tmp_path)]) == 0
    path = tmp_path / "workflowinstances.json"
    record = json.loads(path.read_text())
    assert json.loads(snapshot.render(record)) == record
    record["fields"]["status.gone"] = {"type": "string"}  # as if the model had lost it
    path.write_text(snapshot.render(record))
    assert snapshot.main([str(tmp_path), "--check"]) == 1
    assert snapshot.main([str(tmp_path)]) == 1
    assert "status.gone" in json.loads(path.read_text())["fields"], "nothing written"
    del record["fields"]["status.stepCount"]  # as if the model had just added it
    del record["fields"]["status.gone"]
    path.write_text(snapshot.render(record))
    assert snapshot.main([str(tmp_path), "--check"]) == 1, "stale"
    assert snapshot.main([str(tmp_path)]) == 0
    assert "status.stepCount" in json.loads(path.read_text())["fields"]
    assert snapshot.main([str(tmp_path), "--check"]) == 0


def test_a_version_no_longer_served_is_caught_unless_its_migration_is_on_record() -> None:
    """Objects may be stored in any version the CRD served: dropping one is safe only after
    `tenantflow migrate-storage` ran on every cluster, said in `conversions`."""
    now = snapshot.snapshot(kind_named("Tenant"))
    assert "v1alpha1" in now["servedVersions"] and "v1beta1" in now["servedVersions"]
    dropped = {**copy.deepcopy(now), "servedVersions": ["v1beta1"]}
    problems = snapshot.incompatible(now, dropped)
    assert len(problems) == 1 and "version v1alpha1 is no longer served" in problems[0]
    migrated = {**now, "conversions": {"version v1alpha1": "0.3.0: migrate-storage"}}
    assert snapshot.incompatible(migrated, dropped) == []
    # a new version, or a new storage version, is an addition to record
    assert snapshot.added(dropped, now) == ["Tenant: version v1alpha1"]
