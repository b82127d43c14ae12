"""Idle sandboxes (issue 37): the pure decision and the shared memory (tenancy/idle.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from tenantflow.tenancy import idle
from tenantflow.tenancy.idle import SandboxDemand, State, decide

pytestmark = pytest.mark.unit

NOW = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


def ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


def later(seconds: float) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


def scale(**kwargs: object) -> idle.Scale:
    given: dict[str, object] = {
        "idle_after": 600.0,
        "last_used": ago(0),
        "busy": False,
        "next_wake": None,
        "cold_start": 10.0,
        **kwargs,
    }
    return decide(NOW, **given)  # type: ignore[arg-type]


def test_a_sandbox_used_within_idle_after_stays_up_until_then() -> None:
    got = scale(last_used=ago(100))
    assert got == idle.Scale(True, idle.ACTIVE, later(500))


def test_a_sandbox_unused_for_idle_after_scales_to_zero_with_no_timer_ahead() -> None:
    assert scale(last_used=ago(600)) == idle.Scale(False, idle.IDLE, None)


def test_a_call_in_flight_keeps_it_up_however_long_ago_it_began() -> None:
    got = scale(last_used=ago(3600), busy=True)
    assert got.awake and got.reason == idle.ACTIVE and got.look_again == later(600)


def test_asleep_it_looks_again_a_cold_start_and_margin_before_the_next_wake_up() -> None:
    got = scale(last_used=ago(3600), next_wake=later(3600), cold_start=12.0)
    assert not got.awake
    assert got.look_again == later(3600 - 12 - idle.WARM_MARGIN)


def test_it_wakes_ahead_of_a_wake_up_by_its_cold_start() -> None:
    lead = 12.0 + idle.WARM_MARGIN
    got = scale(last_used=ago(3600), next_wake=later(lead), cold_start=12.0)
    assert got.awake and got.reason == idle.WAKE_AHEAD
    assert got.look_again == later(lead) + idle.WAKE_GRACE
    assert not scale(last_used=ago(3600), next_wake=later(lead + 1), cold_start=12.0).awake


def test_a_wake_up_long_past_no_longer_holds_it_up() -> None:
    stale = NOW - idle.WAKE_GRACE - dt.timedelta(seconds=1)
    assert not scale(last_used=ago(3600), next_wake=stale).awake
    assert scale(last_used=ago(3600), next_wake=ago(5)).awake  # (being handled now)


def test_always_on_and_the_settings_order() -> None:
    assert decide(
        NOW, idle_after=None, last_used=ago(9e6), busy=False, next_wake=None, cold_start=10
    ) == idle.Scale(True, idle.ALWAYS_ON, None)
    assert idle.idle_after(True, 60.0, 600.0) is None  # alwaysOn wins
    assert idle.idle_after(False, 60.0, 600.0) == 60.0  # the Tenant's own
    assert idle.idle_after(False, None, 600.0) == 600.0  # the operator's default
    assert idle.idle_after(False, 0.0, 600.0) is None  # 0s: never
    assert idle.idle_after(False, None, None) is None  # no default: always on


def test_demand_first_sight_of_a_running_sandbox_counts_as_just_used() -> None:
    demand = SandboxDemand()
    assert demand.last_used("acme", running=True, now=NOW) == NOW
    assert demand.available("acme")
    other = SandboxDemand()
    assert other.last_used("acme", running=False, now=NOW) < ago(1e6)
    assert not other.available("acme"), "found at zero after a restart: asleep"


def test_a_start_from_zero_measures_its_cold_start_and_hands_over_its_waiters() -> None:
    demand = SandboxDemand()
    demand.applied("acme", False, False, NOW)
    assert demand.state("acme") is State.ASLEEP and not demand.available("acme")
    demand.wait("acme", "tenant-acme/a")
    demand.wait("acme", "tenant-acme/b")
    assert demand.applied("acme", True, False, NOW) is None
    assert demand.state("acme") is State.WAKING and not demand.available("acme")
    assert demand.cold_start("acme") == idle.DEFAULT_COLD_START
    woken = demand.applied("acme", True, True, later(7))
    assert woken == idle.Woken(7.0, ("tenant-acme/a", "tenant-acme/b"))
    assert demand.available("acme") and demand.waiting("acme") == 0
    assert demand.cold_start("acme") == 7.0
    assert demand.applied("acme", True, True, later(8)) is None, "reported once"


def test_the_lead_is_the_slowest_of_the_recent_cold_starts() -> None:
    demand = SandboxDemand()
    for took in (4.0, 9.0, 3.0):
        demand.applied("acme", False, False, NOW)
        demand.applied("acme", True, False, NOW)
        demand.applied("acme", True, True, later(took))
    assert demand.cold_start("acme") == 9.0


def test_a_sandbox_found_at_zero_and_scaled_up_is_starting() -> None:
    demand = SandboxDemand()
    demand.used("acme", NOW)  # an instance asked before the tenant was first reconciled
    demand.applied("acme", True, False, NOW, was_zero=True)
    assert demand.state("acme") is State.WAKING


def test_instances_that_found_an_up_sandbox_not_ready_are_handed_over_once_it_is() -> None:
    """A new tenant's first pod, or a restarted one: up (not from zero) but not ready yet.
    Instances that found it so wait for it; they are handed over when it is ready, with no
    cold start measured (it did not start from zero)."""
    demand = SandboxDemand()
    demand.applied("acme", True, True, NOW)
    assert not demand.awaited("acme")
    demand.wait("acme", "tenant-acme/a")
    assert demand.awaited("acme") and demand.available("acme"), "up: calls still go to it"
    assert demand.applied("acme", True, False, NOW) is None
    assert demand.waiting("acme") == 1, "kept while it is not ready"
    assert demand.applied("acme", True, True, later(2)) == idle.Woken(None, ("tenant-acme/a",))
    assert not demand.awaited("acme") and demand.cold_start("acme") == idle.DEFAULT_COLD_START
