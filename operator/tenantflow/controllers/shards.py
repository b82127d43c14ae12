"""Sharded, fenced ownership of tenants across operator replicas, on coordination.k8s.io
Leases: every replica drives only the tenants of the shards it holds, and stops driving a
shard before any other replica can take it.

A tenant's namespace hashes to one of `shards` shards. Each replica keeps a *member* Lease
(`tenantflow-member-<identity>`) renewed every `renew` seconds; each shard has a Lease
(`tenantflow-shard-<n>`) whose holder is a member, written only when ownership moves. The
owner a shard should have is chosen by rendezvous hashing over the live members, so a
member joining or leaving moves only its share.

- A replica may act on shard n while it is the holder of `tenantflow-shard-n` and its own
  member Lease, as last renewed, has not run out: `renewed_at + lease - margin` on its own
  monotonic clock, counted from before the renewal was sent. A paused or partitioned
  replica therefore stops on its own, before anyone else can start.
- Another replica takes a shard only when its holder's member Lease has not changed for a
  whole lease duration *as that replica observed it* (client-go's leader election rule:
  no clock needs to agree with another), when the holder released it, or when the holder's
  member Lease is gone.
- Restarting with the same identity (a container restart in the same pod; the previous
  process is dead) takes the identity's shards back at once.

Every run of every work queue and every status write asks `verdict` (the ownership gate),
on top of the resourceVersion guard, and no mode escapes it: an operator started by
mistake registers as a member and waits for a shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenantflow.controllers.ownership import Verdict
from tenantflow.kube.client import ApiException, KubeApi
from tenantflow.observability import metrics
from tenantflow.observability.logging import get_logger
from tenantflow.tenancy.sharding import SHARDS, owner, shard_of
from tenantflow.vocabulary import LEASE_ROLE_LABEL

log = get_logger("tenantflow.shards")
LEASE_API = "coordination.k8s.io/v1"
MEMBER, SHARD = "member", "shard"


def default_identity() -> str:
    """Unique per process unless set (the chart sets the pod's name, stable across
    container restarts)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class ShardSettings:
    identity: str = field(default_factory=default_identity)
    # where the Leases live: one namespace for the whole cluster, whatever namespace each
    # operator is installed in, so that every operator of the cluster is a member of one
    # group (a second install elsewhere, a developer's operator) and none escapes the fence
    namespace: str = "tenantflow-system"
    shards: int = SHARDS
    lease: float = 6.0  # seconds without renewal before a member is gone
    renew: float = 1.5  # seconds between renewals (and looks at the others)
    margin: float = 1.5  # seconds a member stops before its lease could be taken


def _micro_time(now: dt.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Seen:
    """A Lease's record as this replica last saw it, and since when (monotonic)."""

    record: tuple[str, str]  # (holder, renewTime)
    since: float


@dataclass
class Shards:
    kube: KubeApi
    settings: ShardSettings
    gained: Callable[[set[int]], None] = lambda shards: None
    lost: Callable[[set[int]], None] = lambda shards: None
    clock: Callable[[], float] = time.monotonic
    held: set[int] = field(default_factory=set)  # shards whose Lease names us
    reported: set[int] = field(default_factory=set)  # acting() as last told (gained/lost)
    valid_until: float = 0.0  # our member Lease's validity, on our clock
    seen: dict[str, _Seen] = field(default_factory=dict)

    # ------------------------------------------------------------------ questions
    def shard(self, namespace: str) -> int:
        return shard_of(namespace, self.settings.shards)

    def may_act(self, namespace: str) -> bool:
        """True while this replica holds the namespace's shard and is still within its
        lease: checked before every drive and every status write."""
        return self.holds(namespace) and self._in_time()

    def holds(self, namespace: str) -> bool:
        """The namespace's shard names us, whether or not our lease is current: work
        found fenced is deferred, not dropped (another replica adopts it only if the
        shard moves)."""
        return self.shard(namespace) in self.held

    def verdict(self, namespace: str) -> Verdict:
        """The gate (controllers/ownership.py): act while in time; a shard held while the
        lease is late waits for the renewal; another replica's shard is dropped."""
        if self.may_act(namespace):
            return Verdict.ACT
        return Verdict.DEFER if self.holds(namespace) else Verdict.DROP

    def acting(self) -> set[int]:
        return set(self.held) if self._in_time() else set()

    def _in_time(self) -> bool:
        """Our member Lease, as last renewed, has not run out (on our own clock)."""
        return self.clock() < self.valid_until

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        """Renew and rebalance every `renew` seconds until cancelled."""
        while True:
            try:
                await self.tick()
            except Exception:  # the API unreachable: the lease runs out, we stop acting
                log.exception("shard lease round failed")
                self._report()
            await asyncio.sleep(self.settings.renew)

    async def tick(self) -> None:
        await self._renew_member()
        leases = await self.kube.list(LEASE_API, "Lease", self.settings.namespace, LEASE_ROLE_LABEL)
        now = self.clock()
        by_name = {lease["metadata"]["name"]: lease for lease in leases}
        for name, lease in by_name.items():
            spec = lease.get("spec") or {}
            record = (spec.get("holderIdentity") or "", spec.get("renewTime") or "")
            old = self.seen.get(name)
            if old is None or old.record != record:
                self.seen[name] = _Seen(record, now)
        live = sorted(
            lease["spec"]["holderIdentity"]
            for name, lease in by_name.items()
            if lease["metadata"].get("labels", {}).get(LEASE_ROLE_LABEL) == MEMBER
            and self._live(name, now)
        )
        await self._forget_departed(by_name, now)
        me = self.settings.identity
        for n in range(self.settings.shards):
            shard_lease = by_name.get(_shard_name(n))
            holder = ((shard_lease or {}).get("spec") or {}).get("holderIdentity") or ""
            wanted = owner(n, live) == me
            if holder == me and not wanted:
                await self._release(n, shard_lease)
            elif holder == me:
                self.held.add(n)
            elif wanted and (not holder or self._gone(holder, by_name, now)):
                await self._acquire(n, shard_lease)
            else:
                self.held.discard(n)
        self._report()

    async def stop(self) -> None:
        """Graceful: stop acting, then release every shard and the member Lease, so the
        others take over at once instead of after a lease duration."""
        self.valid_until = 0.0
        self._report()
        for n in sorted(self.held):
            with contextlib.suppress(Exception):
                lease = await self.kube.get(
                    LEASE_API, "Lease", _shard_name(n), self.settings.namespace
                )
                await self._release(n, lease)
        with contextlib.suppress(Exception):
            await self.kube.delete(LEASE_API, "Lease", self._member_name(), self.settings.namespace)

    # ------------------------------------------------------------------ steps
    def _live(self, name: str, now: float) -> bool:
        seen = self.seen.get(name)
        return seen is not None and now - seen.since < self.settings.lease

    def _gone(self, holder: str, by_name: dict[str, dict[str, Any]], now: float) -> bool:
        member = _member_name(holder)
        return member not in by_name or not self._live(member, now)

    async def _forget_departed(self, by_name: dict[str, dict[str, Any]], now: float) -> None:
        """Delete member Leases of replicas gone for ten lease durations (each replica
        that dies without a word leaves one)."""
        for name, lease in by_name.items():
            role = lease["metadata"].get("labels", {}).get(LEASE_ROLE_LABEL)
            seen = self.seen[name]
            if role == MEMBER and now - seen.since > 10 * self.settings.lease:
                with contextlib.suppress(ApiException):
                    await self.kube.delete(LEASE_API, "Lease", name, self.settings.namespace)
                del self.seen[name]

    async def _renew_member(self) -> None:
        sent = self.clock()
        if self.valid_until and sent > self.valid_until:
            metrics.LEASE_LATE.inc()
            log.warning(
                "member lease renewal late: acting stopped meanwhile",
                late_by=round(sent - self.valid_until, 2),
                identity=self.settings.identity,
            )
        now = dt.datetime.now(dt.UTC)
        lease = _lease(self._member_name(), self.settings, MEMBER, self.settings.identity, now)
        try:
            await self.kube.patch(
                LEASE_API, "Lease", self._member_name(), self.settings.namespace,
                {"spec": lease["spec"]},
            )  # fmt: skip
        except ApiException as exc:
            if exc.status != 404:
                raise
            await self._ensure_namespace()
            await self.kube.create(lease)
        self.valid_until = sent + self.settings.lease - self.settings.margin

    async def _ensure_namespace(self) -> None:
        """The Leases' namespace, made by whichever operator needs it first."""
        namespace = {"apiVersion": "v1", "kind": "Namespace"}
        with contextlib.suppress(ApiException):
            await self.kube.create({**namespace, "metadata": {"name": self.settings.namespace}})

    async def _acquire(self, n: int, lease: dict[str, Any] | None) -> None:
        now = dt.datetime.now(dt.UTC)
        body = _lease(_shard_name(n), self.settings, SHARD, self.settings.identity, now)
        try:
            if lease is None:
                await self.kube.create(body)
            else:
                guard = {"resourceVersion": lease["metadata"]["resourceVersion"]}
                transitions = int((lease.get("spec") or {}).get("leaseTransitions") or 0) + 1
                await self.kube.patch(
                    LEASE_API, "Lease", _shard_name(n), self.settings.namespace,
                    {"metadata": guard, "spec": {**body["spec"], "leaseTransitions": transitions}},
                )  # fmt: skip
        except ApiException as exc:
            if exc.status in (409, 404):  # another replica was faster: look again next round
                return
            raise
        self.held.add(n)
        log.info("shard acquired", shard=n, identity=self.settings.identity)

    async def _release(self, n: int, lease: dict[str, Any] | None) -> None:
        """Stop acting on the shard first, then hand it over."""
        self.held.discard(n)
        if lease is None:
            return
        guard = {"resourceVersion": lease["metadata"]["resourceVersion"]}
        with contextlib.suppress(ApiException):
            await self.kube.patch(
                LEASE_API, "Lease", _shard_name(n), self.settings.namespace,
                {"metadata": guard, "spec": {"holderIdentity": ""}},
            )  # fmt: skip
        log.info("shard released", shard=n, identity=self.settings.identity)

    def _report(self) -> None:
        """Tell the controllers what changed since the last report, fencing included: a
        lease that ran out between two rounds is lost, and gained again once renewed
        (they re-adopt what they may have skipped meanwhile)."""
        before, after = self.reported, self.acting()
        self.reported = after
        metrics.SHARDS_HELD.set(len(after))
        if before - after:
            metrics.SHARD_HANDOVERS.labels(change="lost").inc(len(before - after))
            self.lost(before - after)
        if after - before:
            metrics.SHARD_HANDOVERS.labels(change="gained").inc(len(after - before))
            self.gained(after - before)

    def _member_name(self) -> str:
        return _member_name(self.settings.identity)


def _shard_name(n: int) -> str:
    return f"tenantflow-shard-{n}"


def _member_name(identity: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-." else "-" for c in identity.lower())
    return f"tenantflow-member-{safe}"[:253]


def _lease(
    name: str, settings: ShardSettings, role: str, holder: str, now: dt.datetime
) -> dict[str, Any]:
    return {
        "apiVersion": LEASE_API,
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": {LEASE_ROLE_LABEL: role},
        },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": int(settings.lease),
            "renewTime": _micro_time(now),
            "acquireTime": _micro_time(now),
        },
    }
