"""Journal serialisation and duration parsing: the shapes the CRD status stores."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantflow.durations import DurationError, format_duration, parse_duration, parse_time
from tenantflow.engine import StepKind, StepRecord, StepState

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10),
        ("5m", 300),
        ("24h", 86400),
        ("1h30m", 5400),
        ("250ms", 0.25),
        ("7d", 604800),
        ("1w", 604800),
        ("1.5s", 1.5),
        (3, 3.0),
        (dt.timedelta(minutes=2), 120),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "10", "ten seconds", "5x", "-5s", -1, True, None])
def test_bad_durations_name_the_field(bad: object) -> None:
    with pytest.raises(DurationError, match=r"retries\.delay"):
        parse_duration(bad, field="retries.delay")  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=10_000_000))
def test_format_duration_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_times_are_utc_and_naive_means_utc() -> None:
    assert parse_time("2026-01-02T03:04:05+02:00") == dt.datetime(
        2026, 1, 2, 1, 4, 5, tzinfo=dt.UTC
    )
    assert parse_time(dt.datetime(2026, 1, 1)).tzinfo is dt.UTC


def test_step_records_round_trip_through_the_status_shape() -> None:
    t = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
    records = [
        StepRecord(
            "a",
            StepKind.DO,
            StepState.COMPLETE,
            attempts=2,
            started_at=t,
            finished_at=t,
            output=None,
        ),
        StepRecord(
            "b",
            StepKind.DO,
            StepState.RETRYING,
            attempts=1,
            next_attempt_at=t,
            error={"name": "ValueError", "message": "x"},
        ),
        StepRecord(
            "c",
            StepKind.EVENT,
            StepState.COMPLETE,
            event_type="go",
            event_index=3,
            until=t,
            output={"type": "go"},
        ),
        StepRecord("d", StepKind.DO, StepState.COMPLETE, output_ref="ref:1"),
    ]
    dicts = [r.to_dict() for r in records]
    assert dicts[0]["output"] is None and "output" in dicts[0], "a null output is kept"
    assert "output" not in dicts[1] and "output" not in dicts[3]
    assert dicts[1]["nextAttemptAt"] == "2026-05-01T12:00:00Z"
    assert [StepRecord.from_dict(d) for d in dicts] == records
