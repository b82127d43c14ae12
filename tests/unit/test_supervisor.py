"""Admission (caps, FIFO, start rate) and fair dispatch: pure, fast."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenantflow.supervisor.admission import Admission
from tenantflow.supervisor.fair_queue import FairDispatcher

pytestmark = pytest.mark.unit


def start(adm: Admission, key: str, created: str = "t", cap: int = 2, rate: float = 1000) -> str:
    return adm.try_start("a", key, created, max_concurrent=cap, starts_per_second=rate).verdict


def test_excess_instances_queue_in_creation_order_and_start_as_slots_free() -> None:
    adm = Admission()
    assert [start(adm, f"i{n}", f"t{n}") for n in range(4)] == [
        "start",
        "start",
        "queued",
        "queued",
    ]
    assert adm.queue_depth("a") == 2
    assert start(adm, "i3", "t3") == "queued", "i2 is ahead of i3"
    woken = adm.observe("a", "i0", "Complete")
    assert woken == ["i2"]
    assert start(adm, "i3", "t3") == "queued"
    assert start(adm, "i2", "t2") == "start"
    assert adm.active("a") == 2


def test_start_rate_is_a_token_bucket_with_double_burst() -> None:
    adm = Admission()
    verdicts = [start(adm, f"i{n}", f"t{n:03}", cap=100, rate=5) for n in range(12)]
    assert verdicts[:10] == ["start"] * 10, "burst = 2 x rate"
    assert verdicts[10] == "throttled"
    d = adm.try_start("a", "i10", "t010", max_concurrent=100, starts_per_second=5)
    assert 0 < d.wait <= 0.2


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["start", "finish"]), st.integers(0, 30)), max_size=200),
    st.integers(1, 5),
)
def test_the_cap_is_never_exceeded_and_nothing_is_dropped(ops: list, cap: int) -> None:
    adm = Admission()
    finished: set[str] = set()
    for op, n in ops:
        key = f"i{n:02}"
        if op == "start" and key not in finished:
            start(adm, key, key, cap=cap)
        elif op == "finish" and adm.is_active("a", key):
            finished.add(key)
            adm.observe("a", key, "Complete")
        assert adm.active("a") <= cap
    # drain: everything still queued starts eventually, in order, never over the cap
    while adm.queue_depth("a"):
        head = adm.queued("a")[0]
        if start(adm, head, head, cap=cap) == "start":
            continue
        running = next(f"i{n:02}" for n in range(31) if adm.is_active("a", f"i{n:02}"))
        adm.observe("a", running, "Complete")
        assert adm.active("a") <= cap


async def test_fair_dispatch_interleaves_tenants() -> None:
    dispatcher = FairDispatcher(slots=1)
    order: list[str] = []
    gate = asyncio.Event()

    async def job(tenant: str, n: int) -> None:
        async with dispatcher.slot(tenant):
            order.append(f"{tenant}{n}")
            await gate.wait()

    first = asyncio.create_task(job("a", 0))
    await asyncio.sleep(0)
    flood = [asyncio.create_task(job("a", n)) for n in range(1, 6)]
    await asyncio.sleep(0)
    single = asyncio.create_task(job("b", 0))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *flood, single)
    assert order.index("b0") == 2, f"b waited more than one slot: {order}"


async def test_a_hung_tenant_holds_only_its_share_of_slots() -> None:
    dispatcher = FairDispatcher(slots=8, per_tenant=2)
    hang = asyncio.Event()
    entered: list[str] = []

    async def job(tenant: str) -> None:
        async with dispatcher.slot(tenant):
            entered.append(tenant)
            if tenant == "stuck":
                await hang.wait()

    stuck = [asyncio.create_task(job("stuck")) for _ in range(6)]
    await asyncio.sleep(0)
    assert dispatcher.held["stuck"] == 2 and dispatcher.waiting("stuck") == 4
    await asyncio.wait_for(asyncio.gather(*(job("other") for _ in range(5))), 1)
    assert entered.count("other") == 5 and entered.count("stuck") == 2
    hang.set()
    await asyncio.gather(*stuck)
    assert dispatcher.busy == 0 and not dispatcher.held


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    dispatcher = FairDispatcher(slots=1)
    hold = asyncio.Event()

    async def holder() -> None:
        async with dispatcher.slot("a"):
            await hold.wait()

    h = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(dispatcher.slot("b").__aenter__())
    await asyncio.sleep(0)
    waiter.cancel()
    hold.set()
    await h
    await asyncio.gather(waiter, return_exceptions=True)
    assert dispatcher.busy == 0 and dispatcher.waiting("b") == 0


def test_unstarted_phases_do_not_release_and_deletion_does() -> None:
    from tenantflow.supervisor.admission import DELETED

    adm = Admission()
    assert start(adm, "i0", "t0", cap=1) == "start"
    assert start(adm, "i1", "t1", cap=1) == "queued"
    assert adm.observe("a", "i0", None) == [] and adm.observe("a", "i0", "Queued") == []
    assert adm.is_active("a", "i0"), "an admitted instance keeps its slot until it finishes"
    assert adm.observe("a", "i0", DELETED) == ["i1"]


def test_usage_is_counted_from_observed_phases_and_starts() -> None:
    from tenantflow.supervisor.usage import UsageTracker

    now = [0.0]
    usage = UsageTracker(clock=lambda: now[0])
    usage.phase_changed("a", None, "Running")
    usage.phase_changed("a", "Running", "Waiting")  # still active
    usage.phase_changed("a", None, "Paused")
    usage.phase_changed("a", "Waiting", "Complete")
    usage.phase_changed("b", None, "Running")
    usage.started("a")
    now[0] = 30.0
    usage.started("a")
    assert usage.report("a", queued=4) == {
        "runningInstances": 1,
        "queuedInstances": 4,
        "startsLastMinute": 2,
    }
    now[0] = 61.0
    assert usage.report("a", queued=0)["startsLastMinute"] == 1
    assert usage.report("b", queued=0)["runningInstances"] == 1
