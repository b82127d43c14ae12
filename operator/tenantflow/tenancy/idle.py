"""Idle sandboxes scale to zero, and start again ahead of their next known wake-up (pure).

A tenant's sandbox (its StatefulSet, and its egress proxy) costs a pod whether or not any
instance uses it. `decide` says whether it should run now, from what the operator knows
without listing anything: when the sandbox was last needed (an advance or an archive asked
for its endpoint, or a call is in flight), the tenant's next known wake-up (the earliest
`nextWakeAt` of its waiting instances, a schedule's next run) and how long its sandbox took
to start the last times (its measured cold start). It is asleep only when nothing needed it
for `idleAfter` and no wake-up is due within a cold start; it wakes that much ahead of the
next one, so a timer fires no later than with an always-on sandbox.

`SandboxDemand` is the small shared memory both controllers meet in (built by the
composition root): the instance side says a sandbox was needed and which instances wait
for it; the tenant side records what it applied and when the sandbox came up.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from tenantflow.vocabulary import ObjectKey

DEFAULT_COLD_START = 10.0  # seconds assumed until one was measured
WARM_MARGIN = 5.0  # seconds more than the measured cold start a wake-up is warmed ahead
COLD_STARTS_KEPT = 5  # the lead is the slowest of the last few starts (cautious)
# a wake-up this far in the past is taken as handled: its drive asked for the sandbox
# (keeping it awake through `last_used`) or found nothing to do
WAKE_GRACE = dt.timedelta(seconds=30)

ACTIVE = "Active"  # needed within idleAfter, or a call in flight
WAKE_AHEAD = "WakeAhead"  # asleep otherwise, but a known wake-up is within a cold start
IDLE = "Idle"  # scaled to zero
ALWAYS_ON = "AlwaysOn"  # spec.sandbox.alwaysOn, or no idleAfter anywhere
WAITING_FOR_SANDBOX = "WaitingForSandbox"  # an instance's reason while it starts


class State(StrEnum):
    AWAKE = "Awake"  # applied with its replicas and ready (or never scaled down)
    WAKING = "Waking"  # applied with its replicas after being at zero, not ready yet
    ASLEEP = "Asleep"  # applied with zero replicas


@dataclass(frozen=True)
class Scale:
    awake: bool
    reason: str  # ACTIVE, WAKE_AHEAD, IDLE or ALWAYS_ON
    look_again: dt.datetime | None  # when the decision may change with time alone


def decide(
    now: dt.datetime,
    *,
    idle_after: float | None,
    last_used: dt.datetime,
    busy: bool,
    next_wake: dt.datetime | None,
    cold_start: float,
) -> Scale:
    """Whether the sandbox should run now. `idle_after` None: always on; `last_used`: when
    it was last needed; `busy`: a call is in flight; `next_wake`: the tenant's earliest
    known wake-up (one long past is ignored); `cold_start`: seconds a start takes."""
    if idle_after is None:
        return Scale(True, ALWAYS_ON, None)
    quiet_since = now if busy else last_used
    idle_at = quiet_since + dt.timedelta(seconds=idle_after)
    if next_wake is not None and next_wake < now - WAKE_GRACE:
        next_wake = None
    warm_at = (
        next_wake - dt.timedelta(seconds=cold_start + WARM_MARGIN)
        if next_wake is not None
        else None
    )
    if now < idle_at:
        return Scale(True, ACTIVE, idle_at)
    if warm_at is not None and next_wake is not None and warm_at <= now:
        # up for the wake-up; once it is past (and handled), decided again
        return Scale(True, WAKE_AHEAD, max(next_wake, now) + WAKE_GRACE)
    return Scale(False, IDLE, warm_at)


def idle_after(
    always_on: bool, tenant_idle_after: float | None, default: float | None
) -> float | None:
    """A tenant's idleAfter in seconds (None: never scaled to zero): alwaysOn wins, then
    its own spec.sandbox.idleAfter, then the operator's default (the chart's); 0 is off."""
    if always_on:
        return None
    chosen = tenant_idle_after if tenant_idle_after is not None else default
    return chosen if chosen else None


@dataclass
class _Tenant:
    last_used: dt.datetime | None = None
    state: State = State.AWAKE
    waking_since: dt.datetime | None = None
    waiters: set[ObjectKey] = field(default_factory=set)
    cold_starts: deque[float] = field(default_factory=lambda: deque(maxlen=COLD_STARTS_KEPT))


@dataclass(frozen=True)
class Woken:
    """A sandbox seen ready after a start from zero, or a sandbox that was up but not yet
    ready (a new tenant's first pod, a restarted one) seen ready with instances waiting."""

    cold_start: float | None  # seconds from the start from zero to ready (None: no such)
    waiters: tuple[ObjectKey, ...]  # instances that waited for it: drive them now


@dataclass
class SandboxDemand:
    """Per tenant: when its sandbox was last needed, what was applied, who waits for it.
    In memory only: a restarted operator treats a sandbox it finds running as just used
    (it stays up for idleAfter) and one it finds at zero as idle."""

    tenants: dict[str, _Tenant] = field(default_factory=dict)

    def _of(self, tenant: str) -> _Tenant:
        found = self.tenants.get(tenant)
        if found is None:
            found = self.tenants[tenant] = _Tenant()
        return found

    # ------------------------------------------------------------------ instance side
    def used(self, tenant: str, now: dt.datetime) -> None:
        """The tenant's sandbox is needed now (an advance or an archive asks for it)."""
        self._of(tenant).last_used = now

    def available(self, tenant: str) -> bool:
        """False while it is at zero or starting from zero: a caller waits for it."""
        found = self.tenants.get(tenant)
        return found is None or found.state is State.AWAKE

    def wait(self, tenant: str, key: ObjectKey) -> None:
        """`key` waits for the tenant's sandbox to start (driven again once it is ready)."""
        self._of(tenant).waiters.add(key)

    def waiting(self, tenant: str) -> int:
        found = self.tenants.get(tenant)
        return len(found.waiters) if found else 0

    # ------------------------------------------------------------------ tenant side
    def last_used(self, tenant: str, *, running: bool, now: dt.datetime) -> dt.datetime:
        """When it was last needed; first seen (a restart), a running sandbox counts as
        used now and one at zero as idle for ever."""
        found = self._of(tenant)
        if found.last_used is None:
            found.last_used = now if running else dt.datetime.min.replace(tzinfo=dt.UTC)
            if not running:
                found.state = State.ASLEEP
        return found.last_used

    def cold_start(self, tenant: str) -> float:
        found = self.tenants.get(tenant)
        return max(found.cold_starts) if found and found.cold_starts else DEFAULT_COLD_START

    def applied(
        self, tenant: str, awake: bool, ready: bool, now: dt.datetime, *, was_zero: bool = False
    ) -> Woken | None:
        """The tenant's sandbox was applied `awake` (its replicas) or not (zero), and is
        `ready` or not (`was_zero`: it had zero replicas before this apply); a start from
        zero that is now ready is returned (once)."""
        found = self._of(tenant)
        if not awake:
            found.state, found.waking_since = State.ASLEEP, None
            return None
        if found.state is State.ASLEEP or (was_zero and found.state is State.AWAKE and not ready):
            found.state, found.waking_since = State.WAKING, now
        if found.state is State.WAKING and ready:
            took = (now - (found.waking_since or now)).total_seconds()
            found.cold_starts.append(took)
            waiters = tuple(sorted(found.waiters))
            found.state, found.waking_since, found.waiters = State.AWAKE, None, set()
            return Woken(took, waiters)
        if found.state is State.AWAKE and ready and found.waiters:
            # instances that found it not ready yet (a new tenant's first pod, a restart)
            waiters = tuple(sorted(found.waiters))
            found.waiters = set()
            return Woken(None, waiters)
        return None

    def awaited(self, tenant: str) -> bool:
        """Someone waits for the tenant's sandbox: it is starting from zero, or instances
        found it not ready yet."""
        found = self.tenants.get(tenant)
        if found is None or found.state is State.ASLEEP:  # (none to ask: it is scaled up first)
            return False
        return found.state is State.WAKING or bool(found.waiters)

    def state(self, tenant: str) -> State:
        found = self.tenants.get(tenant)
        return found.state if found else State.AWAKE

    def forget(self, tenants: Iterable[str]) -> None:
        """Tenants gone, or now another replica's."""
        for tenant in tenants:
            self.tenants.pop(tenant, None)


def earliest(times: Iterable[dt.datetime | None], not_before: dt.datetime) -> dt.datetime | None:
    """The earliest of `times` at or after `not_before` (None: none)."""
    kept = [t for t in times if t is not None and t >= not_before]
    return min(kept) if kept else None
