"""Schedules decided (pure): due times, catch-up and missed runs, the four overlap
policies, pause, time zones, bad specs named by field."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tenantflow.api.crd import openapi_schema
from tenantflow.api.schedule import OverlapPolicy, WorkflowSchedule
from tenantflow.durations import parse_time
from tenantflow.lifecycle.schedule import (
    Cron,
    FinishedRun,
    Plan,
    ScheduleError,
    beyond_history,
    plan,
    run_name,
)

pytestmark = pytest.mark.unit
HOURLY = Cron.parse("0 * * * *", "UTC")


def at(text: str) -> dt.datetime:
    return parse_time(text)


def decide(
    *,
    cursor: str,
    now: str,
    policy: OverlapPolicy = OverlapPolicy.SKIP,
    active: tuple[str, ...] = (),
    catchup: float = 3600,
    buffered: str | None = None,
    suspend: bool = False,
    cron: Cron = HOURLY,
) -> Plan:
    return plan(
        cron,
        schedule="nightly",
        policy=policy,
        catchup=catchup,
        suspend=suspend,
        cursor=at(cursor),
        buffered=at(buffered) if buffered else None,
        active=list(active),
        now=at(now),
    )


def test_a_time_that_came_starts_one_run_and_the_next_times_are_listed() -> None:
    p = decide(cursor="2030-01-01T00:30:00Z", now="2030-01-01T01:00:05Z")
    assert p.start == [at("2030-01-01T01:00:00Z")]
    assert p.next_times[:2] == [at("2030-01-01T02:00:00Z"), at("2030-01-01T03:00:00Z")]
    assert p.evaluated_until == at("2030-01-01T01:00:05Z")
    assert run_name("nightly", p.start[0]) == f"nightly-{int(p.start[0].timestamp())}"


def test_nothing_due_starts_nothing() -> None:
    p = decide(cursor="2030-01-01T01:00:00Z", now="2030-01-01T01:59:59Z")
    assert p.start == [] and p.skipped == 0 and p.missed == 0


def test_after_downtime_times_within_the_window_run_older_ones_are_missed() -> None:
    # down from 00:30 to 05:10 with a 2h window: 01:00 and 02:00 missed; 04:00, 05:00 due;
    # 03:10 is the window's start, so 03:00 is missed too
    p = decide(
        cursor="2030-01-01T00:30:00Z",
        now="2030-01-01T05:10:00Z",
        policy=OverlapPolicy.ALLOW,
        catchup=7200,
    )
    assert p.missed == 3
    assert p.start == [at("2030-01-01T04:00:00Z"), at("2030-01-01T05:00:00Z")]


def test_a_schedule_far_behind_counts_a_bounded_number_of_misses() -> None:
    every_minute = Cron.parse("* * * * *", "UTC")
    p = decide(cursor="2029-01-01T00:00:00Z", now="2030-01-01T00:00:30Z", cron=every_minute)
    assert p.missed == 1000  # counted up to the bound, then the window is planned
    assert p.start == [at("2029-12-31T23:01:00Z")] and p.skipped == 59


def test_skip_starts_nothing_while_a_run_is_active() -> None:
    p = decide(cursor="2030-01-01T00:30:00Z", now="2030-01-01T01:00:05Z", active=("r",))
    assert p.start == [] and p.skipped == 1


def test_skip_during_catch_up_runs_the_first_and_skips_the_rest() -> None:
    p = decide(cursor="2030-01-01T00:30:00Z", now="2030-01-01T03:00:05Z", catchup=86400)
    assert p.start == [at("2030-01-01T01:00:00Z")] and p.skipped == 2


def test_buffer_one_keeps_one_time_for_when_the_active_run_ends() -> None:
    p = decide(
        cursor="2030-01-01T00:30:00Z",
        now="2030-01-01T03:00:05Z",
        policy=OverlapPolicy.BUFFER_ONE,
        active=("r",),
        catchup=86400,
    )
    assert p.start == [] and p.buffered == at("2030-01-01T01:00:00Z") and p.skipped == 2
    # the active run ended: the buffered time runs first
    later = decide(
        cursor="2030-01-01T03:00:05Z",
        now="2030-01-01T03:20:00Z",
        policy=OverlapPolicy.BUFFER_ONE,
        buffered="2030-01-01T01:00:00Z",
    )
    assert later.start == [at("2030-01-01T01:00:00Z")] and later.buffered is None


def test_cancel_other_terminates_the_active_runs_and_starts_the_newest_time() -> None:
    p = decide(
        cursor="2030-01-01T00:30:00Z",
        now="2030-01-01T02:00:05Z",
        policy=OverlapPolicy.CANCEL_OTHER,
        active=("a", "b"),
        catchup=86400,
    )
    assert p.terminate == ["a", "b"]
    assert p.start == [at("2030-01-01T02:00:00Z")] and p.skipped == 1


def test_allow_overlaps() -> None:
    p = decide(
        cursor="2030-01-01T00:30:00Z",
        now="2030-01-01T01:00:05Z",
        policy=OverlapPolicy.ALLOW,
        active=("r",),
    )
    assert p.start == [at("2030-01-01T01:00:00Z")] and p.terminate == []


def test_a_paused_schedule_starts_nothing_and_does_not_catch_up_afterwards() -> None:
    p = decide(cursor="2030-01-01T00:30:00Z", now="2030-01-01T03:00:05Z", suspend=True)
    assert p.start == [] and p.next_times == []
    assert p.evaluated_until == at("2030-01-01T03:00:05Z")  # resumed: from here on


def test_the_time_zone_and_its_daylight_saving_changes_are_honoured() -> None:
    paris = Cron.parse("30 2 * * *", "Europe/Paris")
    # 2030-03-31: clocks go from 02:00 to 03:00 in Paris; 02:30 does not exist that day
    times = paris.after(at("2030-03-30T12:00:00Z"))
    first, second = next(times), next(times)
    assert first == at("2030-03-31T01:00:00Z")  # 03:00 CEST, the first minute after the gap
    assert second == at("2030-04-01T00:30:00Z")  # 02:30 CEST


@pytest.mark.parametrize(
    ("expression", "zone", "field"),
    [
        ("61 * * * *", "UTC", "spec.schedule"),
        ("every day", "UTC", "spec.schedule"),
        ("0 2 * * *", "Mars/Olympus", "spec.timeZone"),
        ("0 2 * * *", "../../etc/passwd", "spec.timeZone"),
    ],
)
def test_bad_specs_name_the_field(expression: str, zone: str, field: str) -> None:
    with pytest.raises(ScheduleError, match=field):
        Cron.parse(expression, zone)


@pytest.mark.parametrize("expression", ["*/10 * * * * *", "0 2 * * * 30", "* * * * * * *"])
def test_a_seconds_field_is_refused_showing_the_five_field_form(expression: str) -> None:
    """croniter reads a sixth field as seconds, last: a Quartz-style `*/10 * * * * *`
    (seconds first) would run every second."""
    with pytest.raises(ScheduleError, match=r"spec\.schedule.* fields.*'\*/10 \* \* \* \*'"):
        Cron.parse(expression, "UTC")


@pytest.mark.parametrize(
    ("expression", "valid"),
    [
        ("*/10 * * * *", True),
        ("0 2 * * MON-FRI", True),
        ("@daily", True),
        ("*/10 * * * * *", False),
        ("0 2 * * * 30", False),
        ("0\t2 * * * *", False),
        ("@every 5m", True),
        ("@every 10s", True),
        ("@every 1h30m", True),
        ("@every 500ms", False),
        ("@every", False),
        ("@every 5", False),
    ],
)
def test_the_crd_refuses_what_the_operator_refuses(expression: str, valid: bool) -> None:
    """The CRD's CEL rule on spec.schedule is the operator's pattern (RE2 and Python's re
    agree on it: no backslashes, no look-arounds)."""
    schema = openapi_schema(WorkflowSchedule)["properties"]["spec"]["properties"]["schedule"]
    (check,) = schema["x-kubernetes-validations"]
    pattern = re.fullmatch(r"self\.matches\('(.*)'\)", check["rule"])
    assert pattern is not None and "spec.schedule" in check["message"]
    assert bool(re.fullmatch(pattern.group(1), expression)) is valid
    if valid:
        Cron.parse(expression, "UTC")
    else:
        with pytest.raises(ScheduleError, match=r"spec\.schedule"):
            Cron.parse(expression, "UTC")


def test_an_interval_runs_at_whole_multiples_of_it_since_the_epoch() -> None:
    cron = Cron.parse("@every 10s", "Europe/Paris")  # (the zone does not move an interval)
    times = cron.after(dt.datetime(2030, 1, 1, 0, 0, 7, tzinfo=dt.UTC))
    assert [next(times).second for _ in range(3)] == [10, 20, 30]


@pytest.mark.unit
def test_beyond_history_keeps_the_newest_of_each_kind() -> None:
    runs = [
        FinishedRun("s-1", "Complete", "2030-01-01T00:01:00Z"),
        FinishedRun("s-2", "Errored", "2030-01-01T00:02:00Z"),
        FinishedRun("s-3", "Complete", "2030-01-01T00:03:00Z"),
        FinishedRun("s-4", "Terminated", "2030-01-01T00:04:00Z"),
        FinishedRun("s-5", "Complete", "2030-01-01T00:05:00Z"),
    ]
    assert [r.name for r in beyond_history(runs, 2, 1)] == ["s-1", "s-2"]
    assert [r.name for r in beyond_history(runs, 0, 0)] == ["s-1", "s-2", "s-3", "s-4", "s-5"]
    assert beyond_history(runs, 3, 2) == []
