"""Ownership is the runtime's (issue 35): a replica that loses a shard writes nothing more
for its tenants, whichever controller still had work queued for them or running.

Two operators, wired by the composition root, share one in-memory API (each with its own
record of calls) and one clock the test moves. Replica a owns everything and has work
queued for tenant acme in every kind's queue (a usage refresh, a schedule's next time, a
definition's recheck); a reconcile of acme is under way when a pauses, b takes the shard
over, and a resumes. From then on a may write Leases (its own membership) and nothing
else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tenantflow.controllers.instances import InstanceSettings
from tenantflow.controllers.shards import ShardSettings
from tenantflow.controllers.wiring import Operator
from tenantflow.observability import metrics
from tenantflow.tenancy.manifests import OperatorSettings
from tenantflow.vocabulary import API_VERSION, DEFINITION, SCHEDULE, TENANT
from tenantflow_dev.fake_kube import FakeKube

pytestmark = pytest.mark.unit
SHARDS = 4
NS = "tenant-acme"
RUNNING = {"runningInstances": 2, "queuedInstances": 0, "startsLastMinute": 2}
INLINE = "async def run(event, step, env):\n    return 1\n"


@dataclass
class Clock:
    t: float = 0.0

    def __call__(self) -> float:
        return self.t


@dataclass
class ReplicaKube(FakeKube):
    """A replica's view of the shared API: its own call record, and a hook on the next
    read of one kind (to move the world while one of its reconciles is under way)."""

    on_read: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        hook = self.on_read.pop(kind, None)
        if hook is not None:
            await hook()
        return await super().get(api_version, kind, name, namespace)

    async def watch(self, *args: Any, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        """A watch on which nothing happens (these tests deliver no watch events)."""
        await asyncio.Event().wait()
        yield {}


def replica(world: FakeKube, clock: Clock, identity: str) -> tuple[Operator, ReplicaKube]:
    kube = ReplicaKube(objects=world.objects, _versions=world._versions)
    op = Operator.build(
        kube,  # type: ignore[arg-type]  # the in-memory API stands in for Kube
        OperatorSettings(shards=SHARDS),
        InstanceSettings(),
        ShardSettings(identity=identity, shards=SHARDS, lease=8.0, renew=2.0, margin=1.5),
    )
    op.shards.clock = clock
    return op, kube


def seed(world: FakeKube) -> None:
    world.put({"apiVersion": API_VERSION, "kind": TENANT, "metadata": {"name": "acme"}, "spec": {}})
    world.put(
        {
            "apiVersion": API_VERSION,
            "kind": DEFINITION,
            "metadata": {"name": "build", "namespace": NS},
            "spec": {"source": {"inline": INLINE}},
        }
    )
    world.put(
        {
            "apiVersion": API_VERSION,
            "kind": SCHEDULE,
            "metadata": {"name": "nightly", "namespace": NS},
            "spec": {"schedule": "0 3 * * *", "workflowRef": {"name": "build"}},
        }
    )


async def settle(op: Operator) -> None:
    """Let adoption finish and every queue run what is waiting (not what is due later)."""
    while op.tasks:
        await asyncio.gather(*op.tasks, return_exceptions=True)
    for _ in range(3):
        for queue in op._queues():
            await queue.drain()


def writes(kube: ReplicaKube, since: int) -> list[tuple[str, str, str]]:
    return [c for c in kube.calls[since:] if c[0] not in ("get", "list") and c[1] != "Lease"]


async def test_a_replica_that_lost_the_shard_writes_nothing_for_its_tenants() -> None:
    world, clock = FakeKube(), Clock()
    seed(world)
    a, kube_a = replica(world, clock, "a")
    b, _ = replica(world, clock, "b")
    await a.shards.tick()  # alone: a takes every shard and adopts acme
    await settle(a)
    tenant = world.read(API_VERSION, TENANT, "acme")
    assert tenant is not None and tenant["status"]["phase"], "a reconciled acme"
    await b.shards.tick()  # b joins; a keeps what it holds while its lease is current
    assert not b.shards.acting()

    # work a has queued for acme in every kind's queue
    a.tenants.usage_changed("acme")  # the usage refresh of the issue: ~5 s later
    assert a.tenants.queue.due_at("acme") is not None
    assert a.schedules.queue.due_at(f"{NS}/nightly") is not None, "its next time"
    a.definitions.queue.request_after(f"{NS}/build", 30.0)  # a rollout's recheck

    # a reconcile of acme under way (its objects applied, its status not yet written)
    # when a pauses and b takes over; it has a status to write (the usage it counts
    # differs from the one stored: the zero of the issue)
    await world.patch(
        API_VERSION, TENANT, "acme", None, {"status": {"usage": RUNNING}}, subresource="status"
    )
    since = 0

    async def pause_and_take_over() -> None:
        nonlocal since
        clock.t = 10.5  # a renewed nothing since t=0: its lease ran out on its own clock
        await b.shards.tick()
        assert b.shards.acting() == set(range(SHARDS)), "b took every shard"
        since = len(kube_a.calls)

    kube_a.on_read["StatefulSet"] = pause_and_take_over
    a.tenants.queue.request("acme")
    await a.tenants.queue.drain()
    assert "StatefulSet" not in kube_a.on_read, "the take-over happened mid-reconcile"

    clock.t = 11.0
    await a.shards.tick()  # a resumes: sees b holds everything, loses its shards
    assert not a.shards.acting()
    for queue in a._queues():  # every run-later a had is due now
        assert queue.scheduled() == 0, f"{queue.name} still holds acme's work"
        await queue.drain()
    a.tenants.queue.request("acme")  # a late watch event: the gate drops it
    a.instances.on_event("MODIFIED", {"metadata": {"name": "x", "namespace": NS}})
    await settle(a)
    assert since and writes(kube_a, since) == [], "the loser wrote after the shard moved"
    stop(a, b)


async def test_the_new_owner_writes_what_the_loser_did_not() -> None:
    world, clock = FakeKube(), Clock()
    seed(world)
    a, _ = replica(world, clock, "a")
    b, kube_b = replica(world, clock, "b")
    await a.shards.tick()
    await b.shards.tick()
    clock.t = 10.5
    await b.shards.tick()  # a paused for a lease duration: b takes over and adopts
    await settle(b)
    since = len(kube_b.calls)
    b.tenants.usage_changed("acme")
    b.tenants.queue.cancel_later("acme")
    b.tenants.queue.request("acme")
    await settle(b)
    assert b.tenants.queue.failures("acme") == 0
    assert ("patch/status", TENANT, "acme") in kube_b.calls[:since], "b adopted acme"
    stop(a, b)


def stop(*ops: Operator) -> None:
    for op in ops:
        for task in op.watches.values():
            task.cancel()


async def test_an_event_that_comes_while_the_lease_is_late_is_run_once_it_is_renewed() -> None:
    """A Tenant created while this replica's renewal is late (a loaded machine) is
    reconciled once the lease is renewed, though no shard was lost or gained meanwhile
    (no adoption relists it): its event was deferred, not ignored."""
    world, clock = FakeKube(), Clock()
    a, _ = replica(world, clock, "a")
    await a.shards.tick()
    await settle(a)
    for queue in a._queues():
        queue.DEFER_DELAY = 0.01  # type: ignore[misc]  # (1 s in production)
    clock.t = 7.0  # renewed at 0, lease 8, margin 1.5: held, but not to be acted on now
    assert a.shards.holds(NS) and not a.shards.may_act(NS)
    seed(world)  # acme, its definition and its schedule, created now
    a.tenant_event("ADDED", "acme")
    a.namespaced_event(a.definitions, "ADDED", NS, "build")
    a.namespaced_event(a.schedules, "ADDED", NS, "nightly")
    await settle(a)
    assert a.tenants.queue.due_at("acme") is not None, "deferred until the lease is renewed"
    late = metrics.LEASE_LATE._value.get()
    await a.shards.tick()  # renewed now: acting() never changed, nothing is adopted
    assert metrics.LEASE_LATE._value.get() == late + 1, "the late renewal is counted"
    assert not a.tasks, "no adoption: the deferred events alone must bring the work"
    later = [asyncio.create_task(q.run_later_loop()) for q in a._queues()]
    await asyncio.sleep(0.2)
    for task in later:
        task.cancel()
    await settle(a)
    tenant = world.read(API_VERSION, TENANT, "acme")
    assert tenant is not None and (tenant.get("status") or {}).get("phase"), "acme reconciled"
    definition = world.read(API_VERSION, DEFINITION, "build", NS)
    assert definition is not None and (definition.get("status") or {}).get("activeRevision")
    assert a.schedules.queue.due_at(f"{NS}/nightly") is not None, "its next time, planned"
    stop(a)
