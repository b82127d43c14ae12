"""Durations (`10s`, `5m`, `1h30m`, `250ms`, or plain seconds) and RFC 3339 timestamps.

One parser for the CRD patterns, the engine and the CLI, so they can never disagree.
"""

from __future__ import annotations

import datetime as dt
import re

from tenantflow.errors import TenantflowError

# Used verbatim as the OpenAPI `pattern` of every duration field in the CRDs.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_FULL = re.compile(DURATION_PATTERN)


class DurationError(TenantflowError, ValueError):
    """A duration or timestamp could not be parsed; the message names the field."""


def parse_duration(value: str | float | dt.timedelta, *, field: str = "duration") -> float:
    """Seconds in `value`; strings like "10s", "5m", "1h30m", "250ms"; numbers are seconds."""
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise DurationError(f"{field}: expected a duration like '10s', got {value!r}")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _FULL.match(value.strip()):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(value.strip()))
    else:
        raise DurationError(
            f"{field}: {value!r} is not a duration; use a number of seconds or a string "
            "like '250ms', '10s', '5m', '24h', '1h30m', '7d'"
        )
    if seconds < 0:
        raise DurationError(f"{field}: {value!r} is negative; durations must be >= 0")
    return seconds


def parse_time(value: str | dt.datetime, *, field: str = "time") -> dt.datetime:
    """A timezone-aware UTC datetime from an RFC 3339 string or a datetime (naive = UTC)."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise DurationError(
                f"{field}: {value!r} is not an RFC 3339 time like '2026-01-02T15:04:05Z'"
            ) from None
    else:
        raise DurationError(f"{field}: expected an RFC 3339 string or datetime, got {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def format_time(value: dt.datetime) -> str:
    """RFC 3339 in UTC with a Z suffix, the Kubernetes style (microseconds kept if present)."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def format_duration(seconds: float) -> str:
    """A compact duration string for messages: 90 -> '1m30s'."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out, rest = "", round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"


def human_age(seconds: float) -> str:
    """How long ago, as kubectl prints a `date` column (apimachinery's HumanDuration), so
    the CLI's tables read as `kubectl get` does: 90 -> '90s', 400 -> '6m40s', 2 days
    -> '2d'."""
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes, hours = s // 60, s // 3600
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 730:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"
