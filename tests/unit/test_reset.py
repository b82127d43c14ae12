"""Reset to a step and retry from failure, as pure decisions over status dicts."""

from __future__ import annotations

import datetime as dt

import pytest

from tenantflow.lifecycle.reset import ResetRequest, applied, epoch, reset

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def errored() -> dict[str, object]:
    return {
        "phase": "Errored",
        "revision": 1,
        "error": {"name": "ValueError", "message": "bug"},
        "finishedAt": "2026-11-28T11:59:00Z",
        "steps": [
            {"name": "a", "state": "Complete", "output": 1},
            {"name": "nap", "state": "Complete"},
            {"name": "b", "state": "Errored", "error": {"name": "ValueError"}},
        ],
        "lostAttempts": {"b": {"attempts": 1}},
    }


def test_retry_cuts_the_journal_at_the_failed_step_and_keeps_the_successful_ones() -> None:
    done = reset(
        errored(), ResetRequest("r1", None, reason="flaky", by="bob"), terminating=False, now=NOW
    )
    update = done.update
    assert [s["name"] for s in update["steps"]] == ["a", "nap"]
    assert (update["phase"], update["error"], update["finishedAt"]) == ("Running", None, None)
    assert update["lostAttempts"] == {"b": None}, "the cut step's lost attempts go too"
    record = update["resets"][-1]
    assert (record["toStep"], record["stepsCut"], record["by"], record["reason"]) == (
        "b",
        1,
        "bob",
        "flaky",
    )
    assert done.event[:2] == ("Normal", "Reset") and "bob" in done.event[2]
    assert applied({**errored(), **update}, ResetRequest("r1", None))
    assert epoch({**errored(), **update}) == 1


def test_reset_to_a_step_on_another_revision() -> None:
    done = reset(errored(), ResetRequest("r2", "nap", revision=2), terminating=False, now=NOW)
    assert [s["name"] for s in done.update["steps"]] == ["a"]
    assert done.update["revision"] == 2
    assert done.update["resets"][-1]["fromRevision"] == 1
    assert "running revision 2 (was 1)" in done.event[2]


@pytest.mark.parametrize(
    ("status", "request_", "terminating", "why"),
    [
        ({**errored(), "phase": "Terminated"}, ResetRequest("x", "a"), False, "terminated"),
        (errored(), ResetRequest("x", "a"), True, "terminated"),
        ({"phase": "Queued"}, ResetRequest("x", "a"), False, "not started yet"),
        (
            errored(),
            ResetRequest("x", "zzz"),
            False,
            "'zzz' is not in the journal (it has: a, nap, b)",
        ),
        (
            {**errored(), "phase": "Complete"},
            ResetRequest("x", None),
            False,
            "retry needs an Errored",
        ),
    ],
)
def test_a_request_that_cannot_apply_is_recorded_as_refused_and_changes_nothing_else(
    status: dict[str, object], request_: ResetRequest, terminating: bool, why: str
) -> None:
    done = reset(status, request_, terminating=terminating, now=NOW)
    assert set(done.update) == {"resets"}, "nothing but the record"
    assert why in done.update["resets"][-1]["refused"]
    assert done.event[:2] == ("Warning", "ResetRefused")
    assert epoch(done.update) == 0, "a refused reset is no new epoch"


def test_run_itself_raising_is_retried_from_the_end_of_its_journal() -> None:
    status = {**errored(), "steps": [{"name": "a", "state": "Complete"}]}
    done = reset(status, ResetRequest("r", None), terminating=False, now=NOW)
    assert [s["name"] for s in done.update["steps"]] == ["a"]
    assert done.update["resets"][-1]["stepsCut"] == 0


def test_the_annotation_round_trips_and_a_hand_written_one_is_refused_with_why() -> None:
    request = ResetRequest("id1", "b", 3, "fix", "alice")
    assert ResetRequest.parse({"tenantflow.dev/reset": request.annotation()}) == request
    assert ResetRequest.parse({}) is None
    with pytest.raises(ValueError, match="must be JSON with an id"):
        ResetRequest.parse({"tenantflow.dev/reset": "b"})
    with pytest.raises(ValueError, match="revision a number from 1"):
        ResetRequest.parse({"tenantflow.dev/reset": '{"id": "x", "revision": 0}'})


def test_the_epoch_goes_on_growing_once_old_records_are_trimmed() -> None:
    """Only the newest resets are kept in status; a 21st reset must still be a new epoch
    (else its steps would be recalled from the 20th's run, and its children found)."""
    status: dict[str, object] = {**errored(), "resets": []}
    for n in range(1, 26):
        status = {
            **status,
            **reset(status, ResetRequest(f"r{n}", "a"), terminating=False, now=NOW).update,
        }
        status["phase"], status["steps"] = "Errored", errored()["steps"]  # ran again, failed
    assert len(status["resets"]) == 20  # type: ignore[arg-type]
    assert epoch(status) == 25
