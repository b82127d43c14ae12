"""The journal carries its format (status.journalVersion, written at the start): a reader
refuses a format newer than it reads, naming the release it is, instead of misreading it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tenantflow import __version__
from tenantflow.engine import journal
from tenantflow.lifecycle import instance_state as state
from tenantflow.vocabulary import Phase
from tests.unit.controllers.harness import Harness

NOW = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)

SLEEPER = """
async def run(event, step, env):
    await step.sleep('nap', '1h')
    return 'woke'
"""


def test_an_instance_records_the_format_it_starts_its_journal_in() -> None:
    status = state.started(3, NOW)
    assert status["journalVersion"] == journal.VERSION == 1
    assert state.pinned({**status, "phase": "Waiting"})["journalVersion"] == 1


def test_known_formats_are_read_and_an_unrecorded_one_is_the_first() -> None:
    assert journal.check_version(None) == 1
    assert journal.check_version(journal.VERSION) == journal.VERSION
    assert state.journal_refusal({"journalVersion": 1}) is None
    assert state.journal_refusal({}) is None


def test_a_newer_format_is_refused_naming_the_release_it_needs() -> None:
    with pytest.raises(journal.JournalVersionError) as caught:
        journal.check_version(journal.VERSION + 1)
    message = str(caught.value)
    assert f"format version {journal.VERSION + 1}" in message
    assert f"tenantflow {__version__}" in message
    assert f"a release after {__version__}" in message
    assert "docs/operations.md" in message


@pytest.mark.parametrize("bad", [0, -1, "1", 1.0, True])
def test_what_is_not_a_format_version_is_refused(bad: object) -> None:
    with pytest.raises(journal.JournalVersionError):
        journal.check_version(bad)


async def test_the_controller_leaves_a_newer_journal_alone(tmp_path: Path) -> None:
    """An operator rolled back below the release that started an instance neither advances
    nor rewrites its journal: it says why on Admitted=False, and an operator that reads
    the format drives it on from where it was."""
    h = Harness.new(tmp_path)
    await h.define("sleeper", SLEEPER)
    key = h.start("one", "sleeper")
    await h.drive(key)
    before = h.status("one")
    assert before["journalVersion"] == journal.VERSION and before["phase"] == Phase.WAITING
    obj = h.watched("one")
    obj["status"] |= {"journalVersion": journal.VERSION + 1, "nextWakeAt": "2026-01-01T00:00:00Z"}
    h.kube.put(obj)
    calls = h.sandbox.calls
    await h.drive(key)
    after = h.status("one")
    assert h.sandbox.calls == calls, "not advanced"
    assert after["steps"] == before["steps"] and after["phase"] == Phase.WAITING
    admitted = next(c for c in after["conditions"] if c["type"] == "Admitted")
    assert (admitted["status"], admitted["reason"]) == ("False", "JournalVersionUnsupported")
    assert "a release after" in admitted["message"]
    assert ("Warning", "JournalVersionUnsupported") in h.events()
