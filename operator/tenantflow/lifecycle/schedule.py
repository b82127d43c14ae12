"""Schedules, decided: which scheduled times start a run, which runs are cancelled, what
waits, what was skipped or missed (pure: the spec's values, the status, the active runs
and the clock in; a Plan out).

The cursor (`status.evaluatedUntil`) is how a schedule survives the operator: every
scheduled time up to it was decided, every later one up to now is decided by the next
plan. Times older than the catch-up window are missed (counted, not run); the rest go
through the overlap policy in order. A run's name is derived from its scheduled time, so
starting it twice (a crash before the status write) finds the one already there.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field

from croniter import croniter

from tenantflow.api.schedule import (
    CRON_FORM,
    CRON_PATTERN,
    EVERY,
    OverlapPolicy,
    ScheduleDefaults,
)
from tenantflow.durations import parse_duration
from tenantflow.vocabulary import Phase

MAX_DUE = 1000  # scheduled times one plan looks at (a minutely schedule down ~16 hours)
_BEFORE = dt.timedelta(microseconds=1)


class ScheduleError(ValueError):
    """The spec cannot be scheduled; the message names the field and the fix."""


@dataclass(frozen=True)
class Cron:
    expression: str
    zone: zoneinfo.ZoneInfo

    @classmethod
    def parse(cls, expression: str, time_zone: str) -> Cron:
        try:
            zone = zoneinfo.ZoneInfo(time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(
                f"spec.timeZone: {time_zone!r} is not an IANA time zone; use a name like UTC, "
                "Europe/Paris or America/New_York"
            ) from None
        if expression.startswith(EVERY) and re.fullmatch(CRON_PATTERN, expression):
            seconds = parse_duration(expression.removeprefix(EVERY), field="spec.schedule")
            if seconds < 1:
                raise ScheduleError(f"spec.schedule: {expression!r}: the interval is 1s at least")
            return cls(expression, zone)
        fields = len(expression.split())
        if fields in (6, 7):  # what croniter would read with a seconds field, last
            raise ScheduleError(
                f"spec.schedule: {expression!r} has {fields} fields; it must be {CRON_FORM}"
            )
        if not re.fullmatch(CRON_PATTERN, expression) or not croniter.is_valid(expression):
            raise ScheduleError(
                f"spec.schedule: {expression!r} is not a cron expression; it must be {CRON_FORM}"
            )
        return cls(expression, zone)

    def after(self, t: dt.datetime) -> Iterator[dt.datetime]:
        """Scheduled times strictly after `t`, in UTC, for ever."""
        if self.expression.startswith(EVERY):  # whole multiples of it since the epoch
            step = parse_duration(self.expression.removeprefix(EVERY))
            n = math.floor(t.timestamp() / step) + 1
            while True:
                yield dt.datetime.fromtimestamp(n * step, dt.UTC)
                n += 1
        it = croniter(self.expression, t.astimezone(self.zone))
        while True:
            yield it.get_next(dt.datetime).astimezone(dt.UTC)


def run_name(schedule: str, at: dt.datetime) -> str:
    """The run a scheduled time starts (as CronJob names its Jobs)."""
    return f"{schedule}-{int(at.timestamp())}"


@dataclass
class Plan:
    start: list[dt.datetime] = field(default_factory=list)  # scheduled times to run
    terminate: list[str] = field(default_factory=list)  # active runs to cancel (CancelOther)
    buffered: dt.datetime | None = None  # waits for the active run (BufferOne)
    skipped: int = 0
    missed: int = 0
    evaluated_until: dt.datetime | None = None
    next_times: list[dt.datetime] = field(default_factory=list)


def plan(
    cron: Cron,
    *,
    schedule: str,
    policy: OverlapPolicy,
    catchup: float,
    suspend: bool,
    cursor: dt.datetime,
    buffered: dt.datetime | None,
    active: list[str],
    now: dt.datetime,
) -> Plan:
    """What to do now. `cursor`: every time up to it was decided; `active`: the schedule's
    runs not finished; `catchup`: seconds a missed time may be late and still run."""
    if suspend:  # paused: the times it passes are not caught up (as Temporal's pause)
        return Plan(evaluated_until=now)
    out = Plan(
        evaluated_until=now, next_times=_first(cron.after(now), ScheduleDefaults.NEXT_RUN_TIMES)
    )
    due, out.missed = _due(cron, cursor, now, now - dt.timedelta(seconds=catchup))
    queue = ([buffered] if buffered is not None else []) + due
    if policy == OverlapPolicy.CANCEL_OTHER and len(queue) > 1:
        out.skipped, queue = len(queue) - 1, queue[-1:]  # each would cancel the one before
    running = list(active)
    for at in queue:
        if not running or policy == OverlapPolicy.ALLOW:
            pass
        elif policy == OverlapPolicy.CANCEL_OTHER:
            out.terminate, running = running, []
        elif policy == OverlapPolicy.BUFFER_ONE and out.buffered is None:
            out.buffered = at
            continue
        else:
            out.skipped += 1
            continue
        out.start.append(at)
        running.append(run_name(schedule, at))
    return out


@dataclass(frozen=True)
class FinishedRun:
    name: str
    phase: str
    scheduled_at: str  # its scheduled-at annotation (RFC 3339 UTC: sorts as time)


def beyond_history(runs: list[FinishedRun], successful: int, failed: int) -> list[FinishedRun]:
    """The finished runs past the schedule's history limits, oldest first: the newest
    `successful` Complete runs and the newest `failed` Errored/Terminated/RollbackFailed
    ones stay
    (CronJob's successfulJobsHistoryLimit/failedJobsHistoryLimit)."""
    out: list[FinishedRun] = []
    for keep, wanted in (
        (successful, lambda r: r.phase == Phase.COMPLETE),
        (failed, lambda r: r.phase in (Phase.ERRORED, Phase.TERMINATED, Phase.ROLLBACK_FAILED)),
    ):
        kind = sorted((r for r in runs if wanted(r)), key=lambda r: (r.scheduled_at, r.name))
        out += kind[: max(len(kind) - keep, 0)]
    return sorted(out, key=lambda r: (r.scheduled_at, r.name))


def _due(
    cron: Cron, cursor: dt.datetime, now: dt.datetime, window: dt.datetime
) -> tuple[list[dt.datetime], int]:
    """(times in (cursor, now] from the window on, how many older ones were missed);
    at most MAX_DUE of each are counted."""
    missed = 0
    if cursor < window:
        for at in cron.after(cursor):
            if at >= window or missed >= MAX_DUE:
                break
            missed += 1
        cursor = window - _BEFORE
    due: list[dt.datetime] = []
    for at in cron.after(cursor):
        if at > now or len(due) >= MAX_DUE:
            break
        due.append(at)
    return due, missed


def _first(times: Iterator[dt.datetime], n: int) -> list[dt.datetime]:
    return [next(times) for _ in range(n)]
