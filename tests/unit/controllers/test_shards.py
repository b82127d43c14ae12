"""Sharded, fenced ownership against the in-memory API, with a clock the test moves: two
replicas split the shards, a paused replica stops acting before the other can take its
shards, a graceful stop hands them over at once, a restart under the same identity takes
its own back."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tenantflow.controllers.shards import Shards, ShardSettings
from tenantflow.tenancy.sharding import owner, shard_of
from tenantflow_dev.fake_kube import FakeKube

pytestmark = pytest.mark.unit
SHARDS = 8


@dataclass
class Clock:
    """One machine's monotonic clock, shared by the replicas of a test."""

    t: float = 0.0

    def __call__(self) -> float:
        return self.t


def replica(kube: FakeKube, clock: Clock, identity: str) -> Shards:
    settings = ShardSettings(identity=identity, shards=SHARDS, lease=8.0, renew=2.0, margin=1.5)
    return Shards(kube, settings, clock=clock)


def test_rendezvous_moves_only_the_shards_of_a_member_that_comes_or_goes() -> None:
    three = {n: owner(n, ["a", "b", "c"]) for n in range(64)}
    two = {n: owner(n, ["a", "b"]) for n in range(64)}
    assert set(three.values()) == {"a", "b", "c"}
    assert all(two[n] == three[n] for n in range(64) if three[n] != "c")
    assert owner(0, []) is None
    assert shard_of("tenant-acme", 16) == shard_of("tenant-acme", 16) < 16


async def test_two_replicas_split_the_shards_between_them() -> None:
    kube, clock = FakeKube(), Clock()
    a, b = replica(kube, clock, "a"), replica(kube, clock, "b")
    await a.tick()
    assert a.acting() == set(range(SHARDS)), "alone, it takes every shard"
    await b.tick()  # b joins
    await a.tick()  # a sees b and hands over b's share
    await b.tick()  # b takes it
    assert a.acting() and b.acting()
    assert a.acting() | b.acting() == set(range(SHARDS))
    assert not a.acting() & b.acting(), "no shard is acted on twice"
    namespace = next(f"tenant-{i}" for i in range(100) if a.shard(f"tenant-{i}") in b.held)
    assert b.may_act(namespace) and not a.may_act(namespace)


async def test_a_paused_replica_stops_acting_before_another_can_take_over() -> None:
    kube, clock = FakeKube(), Clock()
    a, b = replica(kube, clock, "a"), replica(kube, clock, "b")
    await a.tick()
    await b.tick()  # b sees a's member lease; a keeps every shard it holds
    await a.tick()
    await b.tick()
    b_share = set(b.acting())
    a_share = set(a.acting())
    # a is paused (SIGSTOP): it renews nothing while the clock runs
    clock.t = 6.6
    assert not a.acting(), "past renew + lease - margin: a stops on its own"
    await b.tick()
    assert b.acting() == b_share, "a's member lease has not run out as b sees it"
    clock.t = 10.5
    await b.tick()
    assert b.acting() == set(range(SHARDS)), "a's shards move to b"
    # a resumes: it renews, sees b holds everything, and does not act
    clock.t = 11.0
    await a.tick()
    assert not a.acting() & b.acting()
    assert a_share  # (it had some before the pause)


async def test_a_graceful_stop_hands_over_at_once_and_a_restart_takes_its_own_back() -> None:
    kube, clock = FakeKube(), Clock()
    a, b = replica(kube, clock, "a"), replica(kube, clock, "b")
    await a.tick()
    await b.tick()
    await a.tick()
    await b.tick()
    await a.stop()
    assert not a.acting()
    await b.tick()
    assert b.acting() == set(range(SHARDS)), "no lease duration to wait out"
    # b's process dies without a word; a new process with b's identity (its container
    # restarted in the same pod) takes b's shards at once
    clock.t += 1
    again = replica(kube, clock, "b")
    await again.tick()
    assert again.acting() == set(range(SHARDS))
