"""The tenant's history store on a real SQLite file: archive idempotent by uid, a reused
name, search by phase/definition/attributes with keyset pages, logs in order with one
truncation marker, retention, and the size cap refusing instead of losing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenantflow.storage import history
from tenantflow.storage.history import Archived, History, HistoryError, HistoryFull

pytestmark = pytest.mark.unit


def item(n: int, **kw: object) -> Archived:
    fields: dict[str, object] = {
        "uid": f"uid-{n:04d}",
        "name": f"run-{n}",
        "definition": "build",
        "phase": "Complete",
        "created_at": f"2026-12-01T00:{n // 60:02d}:{n % 60:02d}Z",
        "finished_at": f"2026-12-01T01:{n // 60:02d}:{n % 60:02d}Z",
        "attributes": {"repo": "acme-web" if n % 2 else "acme-api"},
        "record": {"status": {"output": n}},
        **kw,
    }
    return Archived(**fields)  # type: ignore[arg-type]


def test_an_archive_is_idempotent_and_a_reused_name_finds_its_newest(tmp_path: Path) -> None:
    h = History(tmp_path)
    h.archive(item(1), "2026-12-01T02:00:00Z")
    h.archive(item(1), "2026-12-01T02:00:01Z")  # a retry after a lost answer
    h.archive(item(2, name="run-1", finished_at="2026-12-01T03:00:00Z"), "x")
    got = h.get("run-1")
    assert got is not None and got.uid == "uid-0002" and got.record["status"]["output"] == 2
    assert len(h.search(limit=10)[0]) == 2
    h.close()
    again = History(tmp_path)  # durable: a new process reads what the last one wrote
    assert again.get("run-1") == got


def test_search_filters_by_phase_definition_and_attributes_in_pages(tmp_path: Path) -> None:
    h = History(tmp_path)
    for n in range(25):
        h.archive(item(n, phase="Errored" if n % 5 == 0 else "Complete"), "x")
    web, cursor = h.search(attributes={"repo": "acme-web"}, limit=5)
    seen = [i.name for i in web]
    while cursor is not None:
        page, cursor = h.search(attributes={"repo": "acme-web"}, before=cursor, limit=5)
        seen += [i.name for i in page]
    assert seen == [f"run-{n}" for n in range(24, 0, -1) if n % 2], "all of them, newest first"
    errored, _ = h.search(phase="Errored", limit=50)
    assert [i.name for i in errored] == ["run-20", "run-15", "run-10", "run-5", "run-0"]
    assert h.search(definition="other", limit=5) == ([], None)
    assert web[0].record == {}, "a page carries summaries, not whole records"
    with pytest.raises(HistoryError, match="limit must be between 1 and 500"):
        h.search(limit=501)


def test_logs_keep_their_order_and_say_where_they_were_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "MAX_LINES_PER_INSTANCE", 5)
    h = History(tmp_path)
    lines = [{"message": f"line {i}", "ts": "forged", "step": "build"} for i in range(3)]
    assert h.append_logs("u", "2026-12-01T00:00:00Z", attempt(lines, 1)) == 3
    assert h.append_logs("u", "2026-12-01T00:00:01Z", attempt(lines, 2)) == 3  # 2, the marker
    assert h.append_logs("u", "2026-12-01T00:00:02Z", attempt(lines, 3)) == 0
    got = h.logs("u")
    assert [g.message for g in got[:5]] == ["line 0", "line 1", "line 2", "line 0", "line 1"]
    assert "log truncated" in got[5].message and len(got) == 6
    assert got[0].at == "2026-12-01T00:00:00Z" and got[0].fields["ts"] == "forged"
    assert [g.attempt for g in got] == [1, 1, 1, 2, 2, 0]
    assert [g.message for g in h.logs("u", after=got[3].seq)] == ["line 1", got[5].message]
    assert [g.message for g in h.logs("u", step="build", attempt=2)] == ["line 0", "line 1"]


def attempt(lines: list[dict[str, object]], n: int) -> list[dict[str, object]]:
    return [{**line, "attempt": n} for line in lines]


def test_retention_forgets_old_instances_and_their_lines(tmp_path: Path) -> None:
    h = History(tmp_path)
    h.archive(item(1), "x")
    h.archive(item(2, finished_at="2026-12-09T00:00:00Z"), "x")
    h.append_logs("uid-0001", "2026-12-01T00:00:00Z", [{"message": "old"}])
    h.append_logs("uid-0002", "2026-12-08T00:00:00Z", [{"message": "new"}])
    h.append_logs("never-archived", "2026-12-01T00:00:00Z", [{"message": "stray"}])
    assert h.prune("2026-12-05T00:00:00Z") == 1
    assert h.get("run-1") is None and h.get("run-2") is not None
    assert h.logs("uid-0001") == [] and h.logs("never-archived") == []
    assert [g.message for g in h.logs("uid-0002")] == ["new"]


def test_a_full_store_refuses_the_write_and_keeps_what_it_had(tmp_path: Path) -> None:
    h = History(tmp_path, max_bytes=64 * 4096)
    h.archive(item(1), "x")
    big = {"status": {"output": "x" * 400_000}}
    with pytest.raises(HistoryFull, match=r"spec\.history"):
        h.archive(item(2, record=big), "x")
    assert h.get("run-1") is not None and h.get("run-2") is None
