"""The bounded journal (issue 34.4), against a real history store: the finished prefix
beyond the window leaves the status for the store, comes back checked before a replay,
never splits off an entry the operator still acts on, and goes back into the archive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tenantflow.sandbox.pod.journal_window import (
    GENESIS,
    JournalUnavailable,
    Offloaded,
    chain,
    expand,
    trim,
)
from tenantflow.storage.history import Archived, History

pytestmark = pytest.mark.unit
AT = "2030-01-01T00:00:00Z"


def entries(n: int, state: str = "Complete", start: int = 0) -> list[dict[str, Any]]:
    return [
        {"name": f"s{i}", "kind": "do", "state": state, "output": i}
        for i in range(start, start + n)
    ]


def test_the_finished_prefix_beyond_the_window_is_kept_and_comes_back(tmp_path: Path) -> None:
    store, journal = History(tmp_path), entries(10)
    window, kept = trim(store, "u1", journal, Offloaded(), 3, AT)
    assert [e["name"] for e in window] == ["s7", "s8", "s9"]
    assert kept == Offloaded(7, chain(GENESIS, journal[:7]))
    assert expand(store, "u1", window, kept) == journal, "the worker replays all of it"
    # the next advance adds two entries: only the new overflow is written, the chain grows
    longer = journal + entries(2, start=10)
    window, again = trim(store, "u1", longer, kept, 3, AT)
    assert again.count == 9 and again.digest == chain(GENESIS, longer[:9])
    assert expand(store, "u1", window, again) == longer


def test_an_entry_not_final_stays_in_the_status_whatever_its_age(tmp_path: Path) -> None:
    journal = entries(2) + entries(1, "Waiting", 2) + entries(6, start=3)
    window, kept = trim(History(tmp_path), "u1", journal, Offloaded(), 2, AT)
    assert kept.count == 2 and window[0]["state"] == "Waiting", "a waiting child stays visible"
    window, kept = trim(History(tmp_path / "b"), "u2", entries(3), Offloaded(), 5, AT)
    assert kept == Offloaded() and len(window) == 3, "short journals are left alone"


def test_a_store_that_lost_or_changed_entries_fails_the_replay_clearly(tmp_path: Path) -> None:
    store, journal = History(tmp_path), entries(6)
    window, kept = trim(store, "u1", journal, Offloaded(), 2, AT)
    store.offload("u1", 1, [{"name": "s1", "kind": "do", "state": "Complete", "output": 99}], AT)
    with pytest.raises(JournalUnavailable, match="not as they were written"):
        expand(store, "u1", window, kept)
    with pytest.raises(JournalUnavailable, match="holds 0 of the 4"):
        expand(History(tmp_path / "empty"), "u1", window, kept)


def test_a_repeated_advance_rewrites_the_same_entries_in_place(tmp_path: Path) -> None:
    """A lost answer: the operator's status still has the old count, the store has more
    rows already; the rows past the count are ignored, then written again alike."""
    store, journal = History(tmp_path), entries(8)
    trim(store, "u1", journal, Offloaded(), 2, AT)  # answered, but the answer was lost
    window, kept = trim(store, "u1", journal, Offloaded(), 2, AT)
    assert kept.count == 6 and expand(store, "u1", window, kept) == journal


def test_the_archive_record_has_the_whole_journal_again(tmp_path: Path) -> None:
    store, journal = History(tmp_path), entries(8)
    window, kept = trim(store, "u1", journal, Offloaded(), 3, AT)
    status = {"phase": "Complete", "steps": window, "offloadedSteps": kept.wire()}
    store.archive(Archived("u1", "one", "ci", "Complete", AT, AT, record={"status": status}), AT)
    got = store.get("one")
    assert got is not None and got.record["status"]["steps"] == journal
    assert "offloadedSteps" not in got.record["status"]
    assert store.offloaded("u1", 10) == [], "the live copy is gone once archived"


def test_what_the_payload_says_is_kept_is_checked() -> None:
    assert Offloaded.of(None) == Offloaded()
    with pytest.raises(ValueError, match="offloaded must be"):
        Offloaded.of({"count": -1, "digest": ""})
