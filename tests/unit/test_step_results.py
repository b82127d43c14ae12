"""The second guard: completed steps' results kept in the tenant's store, recalled instead
of run again by an advance whose journal does not have them (a real SQLite file)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tenantflow.engine.executor import advance
from tenantflow.engine.journal import dump, load
from tenantflow.engine.outcome import Complete
from tenantflow.storage.database import StorageQuotaExceeded, TenantDatabase
from tenantflow.storage.step_results import SqliteStepResults

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def workflow(calls: list[str]) -> Any:
    async def run(event: Any, step: Any) -> Any:
        a = await step.do("charge", lambda: calls.append("charge") or {"id": 7})
        await step.sleep("nap", "1h")
        return a

    return run


def test_a_step_completed_by_a_lost_advance_is_recalled_not_run(tmp_path: Path) -> None:
    calls: list[str] = []
    db = TenantDatabase(tmp_path / "t.sqlite3")
    lost = advance(
        workflow(calls),
        results=SqliteStepResults(db, "i@t0", set()),
        now=lambda: NOW,
        started_at=NOW,
    )
    assert calls == ["charge"]
    # its answer never reached the status: the next advance starts from an empty journal
    again = advance(
        workflow(calls),
        results=SqliteStepResults(db, "i@t0", set()),
        now=lambda: NOW,
        started_at=NOW,
    )
    assert calls == ["charge"], "recalled, not run again"
    assert again.executed == [("charge", "recalled")]
    assert dump(again.journal)[0]["output"] == {"id": 7} == dump(lost.journal)[0]["output"]


def test_results_are_per_run_and_leave_once_the_status_has_them(tmp_path: Path) -> None:
    calls: list[str] = []
    db = TenantDatabase(tmp_path / "t.sqlite3")
    first = advance(
        workflow(calls),
        results=SqliteStepResults(db, "i@t0", set()),
        now=lambda: NOW,
        started_at=NOW,
    )
    advance(  # a re-created instance of the same name: another run
        workflow(calls),
        results=SqliteStepResults(db, "i@t1", set()),
        now=lambda: NOW,
        started_at=NOW,
    )
    assert calls == ["charge", "charge"]
    persisted = {r.name for r in first.journal if r.state.value == "Complete"}
    SqliteStepResults(db, "i@t0", persisted)  # the next advance of i@t0 sees it persisted
    rows = db.query("SELECT run, step FROM _tenantflow_step_results ORDER BY run")
    assert rows == [{"run": "i@t1", "step": "charge"}]
    assert isinstance(
        advance(
            workflow(calls), journal=load(dump(first.journal)), now=lambda: NOW, started_at=NOW
        ).outcome,
        type(first.outcome),
    )


def test_a_full_store_never_fails_the_step(tmp_path: Path) -> None:
    calls: list[str] = []
    db = TenantDatabase(tmp_path / "t.sqlite3", max_bytes=64 * 1024)
    db.execute("CREATE TABLE filler (x BLOB)")
    with pytest.raises(StorageQuotaExceeded):
        for _ in range(64):  # until not one page is left
            db.execute("INSERT INTO filler VALUES (?)", (b"x" * 1000,))
    result = advance(
        workflow(calls),
        results=SqliteStepResults(db, "i@t0", set()),
        now=lambda: NOW,
        started_at=NOW,
    )
    assert calls == ["charge"] and not isinstance(result.outcome, Complete)
    assert dump(result.journal)[0]["state"] == "Complete"
