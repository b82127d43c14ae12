"""WorkflowInstance controller: drive each instance through the sandbox, journal in status.

Every watched event requests one coalesced drive of its instance (the shared WorkQueue);
sleeping and waiting instances come back through the queue's run-later. A drive reads the
instance (or reuses the body our last write left, see StatusWriter.remember), decides on a
`Drive` what to do — expire, terminate, pause, queue, start, advance — and StatusWriter
persists it once.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenantflow.api.tenant import TenantLimits
from tenantflow.cache import Cache
from tenantflow.controllers.instances.advance import Advancer
from tenantflow.controllers.instances.archive import Archiver
from tenantflow.controllers.instances.bookkeeping import PhaseBook
from tenantflow.controllers.instances.children import Children
from tenantflow.controllers.instances.drive import Drive
from tenantflow.controllers.instances.failures import SandboxFailures
from tenantflow.controllers.instances.plans import Plans
from tenantflow.controllers.instances.revisions import RevisionResolver
from tenantflow.controllers.instances.status_writer import StatusWriter
from tenantflow.controllers.instances.view import InstanceView, key_of
from tenantflow.controllers.ownership import Gate, Verdict, sole_replica
from tenantflow.controllers.persist import Persist
from tenantflow.controllers.revision_cache import RevisionCache
from tenantflow.controllers.sandboxes import Sandboxes
from tenantflow.controllers.work_queue import WorkQueue, namespace_in_key
from tenantflow.durations import parse_duration, parse_time
from tenantflow.engine import compensation
from tenantflow.kube.client import KubeApi
from tenantflow.kube.events import EventRecorder
from tenantflow.lifecycle import attributes, reset
from tenantflow.lifecycle import instance_state as state
from tenantflow.observability import metrics
from tenantflow.observability.logging import get_logger
from tenantflow.sandbox.client.transport import HttpTransport
from tenantflow.shapes import InstanceStatus
from tenantflow.supervisor.admission import LENT, Admission
from tenantflow.supervisor.fair_queue import FairDispatcher
from tenantflow.vocabulary import (
    API_VERSION,
    FINISHED,
    INSTANCE,
    JOURNAL_WINDOW,
    TENANT,
    ConditionType,
    ObjectKey,
    Phase,
    object_key,
    split_key,
    tenant_of,
)

log = get_logger("tenantflow.instance")
LIMITS_TTL = 1.0  # seconds a tenant's limits are reused before being read again
KEEP_FOR_TTL = 60.0  # seconds a tenant's keepFinishedFor is reused before being read again
UNSET = -1.0  # a tenant that sets no keepFinishedFor (cached as such)


@dataclass(frozen=True)
class InstanceSettings:
    finished_ttl: float = 7 * 86400.0  # seconds a finished instance is kept (0: forever)
    drive_workers: int = 64
    dispatch_slots: int = 16  # sandbox calls in flight, shared fairly by tenants
    journal_window: int = JOURNAL_WINDOW  # journal entries a status keeps (0: all)


@dataclass
class InstanceController:
    kube: KubeApi
    sandboxes: Sandboxes
    revision_cache: RevisionCache
    usage_changed: Callable[[str], None]  # Tenant.status.usage is worth refreshing
    settings: InstanceSettings = field(default_factory=InstanceSettings)
    # (namespace, definition) of an instance seen finished: a rollout may count it
    finished: Callable[[str, str], None] = lambda namespace, definition: None
    # (namespace, schedule) of a scheduled run seen finished: the schedule may start another
    run_finished: Callable[[str, str], None] = lambda namespace, schedule: None
    # whether this replica may work on a namespace now (controllers/ownership.py): asked
    # by the queue before every drive and by the persist before every write
    gate: Gate = sole_replica
    transport: HttpTransport = field(default_factory=HttpTransport)
    recorder: EventRecorder | None = None  # the operator's one recorder (else its own)

    def __post_init__(self) -> None:
        self.queue: WorkQueue[ObjectKey] = WorkQueue(
            self.drive,
            namespace_of=namespace_in_key,
            workers=self.settings.drive_workers,
            name="instances",
            gate=lambda namespace: self.gate(namespace),  # late-bound: tests swap the gate
        )
        self.admission = Admission()
        self.book = PhaseBook(self.admission, self.queue.request, self.usage_changed)
        events = self.recorder or EventRecorder(self.kube)
        self.writer = StatusWriter(events, self.queue, Persist(self.kube, self.queue.gate))
        self.revisions = RevisionResolver(self.kube, self.revision_cache)
        self.failures = SandboxFailures(self.sandboxes)
        self.archiver = Archiver(self.sandboxes, self.transport)
        self.children = Children(
            self.kube,
            Plans(self.kube, self.revision_cache, events),  # plans written at runtime
            phase_of=self.book.phase_of,
            nudge=self.queue.request,
        )
        self.advancer = Advancer(
            self.sandboxes,
            self.transport,
            FairDispatcher(self.settings.dispatch_slots),
            self.failures,
            self.book.storage_measured,
            journal_window=self.settings.journal_window,
        )
        self.limits: Cache[str, TenantLimits] = Cache(maxsize=4096, ttl=LIMITS_TTL)
        # tenants' spec.history.keepFinishedFor in seconds (UNSET: the operator's TTL), and
        # when it was read (monotonic): re-read by a drive at most every KEEP_FOR_TTL
        self.keep_for: Cache[str, tuple[float, float]] = Cache(maxsize=4096)

    # ------------------------------------------------------------------ shards
    async def adopt(self, ours: Callable[[str], bool]) -> None:
        """The instances of namespaces just become ours (a shard gained, the operator's
        start): admission state from the CRs (active ones hold their slots, the not yet
        started queue in creation order), then a drive of each."""
        async for page, _ in self.kube.list_pages(API_VERSION, INSTANCE):
            for body in page:
                v = InstanceView.decode(body)
                if not ours(v.namespace):
                    continue
                tenant = tenant_of(v.namespace)
                if v.status.get("revision") is None and v.phase not in FINISHED:
                    self.admission.enqueue(tenant, v.key, v.created)
                else:
                    self.admission.observe(tenant, v.key, LENT if v.lent else v.phase)
                self.queue.request(v.key)

    def release(self, ours: Callable[[str], bool]) -> None:
        """Namespaces no longer ours (a shard lost): forget their instances; the replica
        that takes the shard adopts them."""
        for key in [k for k in self.book.phases if ours(split_key(k)[0])]:
            self.book.track(key, None, None)
            self.queue.cancel_later(key)
            self.writer.fresh.pop(key, None)
        self.children.verified.forget(lambda key: ours(split_key(key)[0]))

    # ------------------------------------------------------------------ watch events
    def on_event(self, kind: str, body: dict[str, Any]) -> None:
        """One watched state: drive the instance unless it has nothing to do (or it is in
        another replica's shard)."""
        key = key_of(body)
        verdict = self.gate(body["metadata"]["namespace"])
        if verdict is not Verdict.ACT:
            if verdict is Verdict.DEFER:  # the lease is late: the queue's gate waits for it
                self.queue.request(key)
            return
        view = InstanceView.decode(body)
        if kind == "DELETED" or self._newly_finished(view):
            self._ended(view, deleted=kind == "DELETED")
        self.writer.forget_if_changed(key, None if kind == "DELETED" else body)
        # (an ADDED body is never kept for the drive: a watch resumed behind the instance's
        # first advance can bring its creation late, and a drive from it would run
        # persisted steps again; the drive reads the instance instead)
        if kind not in ("ADDED", "DELETED"):
            if self.writer.is_echo(key, body):
                # the echo of our own write: bookkeeping only; the drive that wrote it
                # already asked for what comes next (a retry's backoff must not be cut
                # short), and it may still be running (posting its Event)
                if self._observe(view, dt.datetime.now(dt.UTC)):
                    return
                if view.phase not in FINISHED:  # (one past its expiry: the drive deletes it)
                    self.book.track(key, tenant_of(view.namespace), view.phase, view.lent)
                    return
            elif self.settled(view):
                return
        self.queue.request(key)

    def _newly_finished(self, view: InstanceView) -> bool:
        """Finished, and not yet booked as such by this process: who may be waiting on it
        has not heard of it from us (the watch event, the drive that wrote it, the drive
        that read it: whichever comes first tells them, once)."""
        return view.phase in FINISHED and self.book.phase_of(view.key) not in FINISHED

    def _ended(self, view: InstanceView, *, deleted: bool) -> None:
        """An instance seen finished (or gone): booked as such at once, before its own
        drive (a parent's drive reads the book, and must not take a child the watch shows
        finished, or gone, for an active one), then who may be waiting on it hears of it."""
        if deleted:
            self.book.track(view.key, None, None)
        else:
            self.book.track(view.key, tenant_of(view.namespace), view.phase)
        if view.parent:
            self.queue.request(object_key(view.namespace, view.parent))  # a child it may await
        if deleted:
            return
        self.finished(view.namespace, view.workflow)  # a rollout may count it
        if view.schedule:
            self.run_finished(view.namespace, view.schedule)

    def relisted(self, keys: set[tuple[str, str]], covers: Callable[[str], bool]) -> None:
        """After a full list of the namespaces `covers` says it covered: instances we
        track there that it no longer holds were deleted while no watch was open; a drive
        finds them gone and cleans up."""
        for key in self.book.phases:
            ns, name = split_key(key)
            if covers(ns) and (ns, name) not in keys:
                self.queue.request(key)

    def settled(self, v: InstanceView) -> bool:
        """True when a watched state needs no drive, only bookkeeping: finished (expiry
        ahead), or Waiting with nothing due. Most events are the echo of our own status
        write, and this skips a GET for each. Deciding "nothing to do" from a watched body
        is safe even if it is not the newest: watch events arrive in order, so any later
        change brings its own event; deciding "work to do" always reads afresh (drive)."""
        if self.queue.busy(v.key):
            return False  # a drive is running or due: it reads the newest state anyway
        return self._observe(v, dt.datetime.now(dt.UTC))

    def _observe(self, v: InstanceView, now: dt.datetime) -> bool:
        """The bookkeeping of a watched state (phase, expiry, wake-up); True when that is
        all it needs: finished with its expiry ahead, or Waiting with nothing due."""
        if v.reset_pending:
            return False  # `tenantflow reset|retry` asked for something: drive
        if v.phase in FINISHED:
            expiry = self._expiry(v)
            if expiry is not None and expiry <= now:
                return False  # the drive deletes it
            self.book.track(v.key, tenant_of(v.namespace), v.phase)
            if expiry is not None:
                self.queue.request_after(v.key, expiry)
            return True
        idle = (
            v.phase == Phase.WAITING
            and v.status.get("revision") is not None
            and not v.terminate
            and not v.suspend
            and not state.needs_advance(v.status, v.events, now)
        )
        if idle:
            self.book.track(v.key, tenant_of(v.namespace), v.phase, v.lent)
            self._wake_at_next(v.key, v.status)
        return idle

    # ------------------------------------------------------------------ one drive
    async def drive(self, key: ObjectKey) -> None:
        ns, name = split_key(key)  # (the queue's gate let it run: this shard is ours)
        body = self.writer.fresh.pop(key, None) or await self.kube.get(
            API_VERSION, INSTANCE, name, ns
        )
        if body is None:
            self.queue.cancel_later(key)
            self.book.track(key, None, None)
            return
        d = Drive.of(body, dt.datetime.now(dt.UTC))
        if self._newly_finished(d.view):
            # its finish was not seen here (its watch event came while this replica was
            # fenced, or before a restart): its parent and schedule hear of it now
            self._ended(d.view, deleted=False)
        else:
            self.book.track(key, tenant_of(ns), d.view.phase, d.view.lent)
        await self._decide(d)
        await self.writer.persist(d)
        after = InstanceView.decode(d.written or d.body).status
        if d.written is not None and (written := InstanceView.decode(d.written)).phase in FINISHED:
            if self._newly_finished(written):
                self._ended(written, deleted=False)  # not left to the watch's echo
            # its archive time, by its tenant's keepFinishedFor (read now: the echo's
            # bookkeeping cannot wait for a read)
            expiry = self._expiry(written, await self._keep_for(written.tenant or ""))
            if expiry is not None:
                self.queue.request_after(key, expiry)
        elif after.get("phase") == Phase.WAITING:
            self._resync_children(key, after)
        if d.close_children or (
            after.get("phase") in FINISHED and state.awaited_steps(after.get("steps") or [])
        ):
            await self.children.close(ns, d.view.uid)

    async def _decide(self, d: Drive) -> None:
        v = d.view
        if (refusal := state.journal_refusal(v.status)) is not None:
            # a later release's journal (this operator was rolled back): left as it is
            d.condition(ConditionType.ADMITTED, False, "JournalVersionUnsupported", refusal)
        elif v.reset is not None and v.reset_pending:
            done = reset.reset(d.status, v.reset, terminating=v.terminate, now=d.now)
            d.write(done.update, done.event)
            d.again = d.close_children = done.event[1] == "Reset"  # then run from the cut
        elif v.phase in FINISHED:
            await self._expire(d)
        elif v.terminate and v.terminate_rollback and v.tenant and v.status.get("revision"):
            await self._terminate_with_rollback(d, v.tenant)
        elif v.terminate:
            d.write(
                state.finished(Phase.TERMINATED, d.now),
                ("Normal", "Terminated", "terminated by spec.terminate"),
            )
        elif v.tenant is None:
            d.condition(
                ConditionType.ADMITTED,
                False,
                "NotATenantNamespace",
                f"namespace {v.namespace} is not a tenant namespace (tenant-<name>)",
            )
        elif v.suspend:
            if v.phase != Phase.PAUSED:
                d.write({"phase": Phase.PAUSED}, ("Normal", "Paused", "suspended by spec.suspend"))
        else:
            await self._run(d, v.tenant)

    async def _terminate_with_rollback(self, d: Drive, tenant: str) -> None:
        """spec.terminate with the rollback annotation: the rollbacks of its completed
        steps run first (phase Compensating, driven as any advance), then it ends
        Terminated; with nothing to roll back it ends Terminated at once."""
        if d.view.phase != Phase.COMPENSATING:
            begun = state.begin_compensation(d.status, state.termination("spec.terminate"), d.now)
            if begun is None and not compensation.compensating_in(d.status.get("steps") or []):
                d.write(
                    state.finished(Phase.TERMINATED, d.now),
                    ("Normal", "Terminated", "terminated by spec.terminate (nothing to roll back)"),
                )
                return
            if begun is not None:
                d.move(begun)
                d.write(
                    {**state.pinned(d.status), **begun},
                    ("Normal", "Compensating", "terminated with rollback: rollbacks run first"),
                )
        elif not state.needs_advance(d.status, d.view.events, d.now):
            self._wake_at_next(d.key, d.status)
            return
        revision = await self.revisions.resolve(d)
        if revision is None:
            return
        await self.advancer.advance(d, revision, await self._limits(tenant))

    async def _run(self, d: Drive, tenant: str) -> None:
        """Start (within the tenant's admission) and advance a runnable instance."""
        revision = await self.revisions.resolve(d)
        if revision is None:
            return
        limits = await self._limits(tenant)
        if d.status.get("revision") is None:
            if not self._admit(d, tenant, limits):
                return
            await self._label(d, revision)
            d.move(state.started(revision["revision"], d.now))
            self.book.started(tenant)
        elif d.view.phase == Phase.PAUSED:
            d.status["phase"] = Phase.RUNNING  # resumed
        if d.status != d.view.status:  # started or resumed: recorded whatever comes next
            d.write(state.pinned(d.status, "phase"))
        awaited = await self.children.awaited(d)
        changed = awaited is not None and awaited.changed
        if not state.needs_advance(d.status, d.view.events, d.now, children_changed=changed):
            self._wake_at_next(d.key, d.status)
            return
        if d.view.lent and not self._admit(d, tenant, limits, resume=True):
            return  # its slot went to its children: it runs again when one is free
        await self.advancer.advance(d, revision, limits, awaited.finished if awaited else None)
        if d.starts:
            await self.children.start(d, d.starts, limits)

    async def _label(self, d: Drive, revision: dict[str, Any]) -> None:
        """Its search attributes as labels, at its start (lifecycle/attributes.py); a label
        its creator set already is kept. One metadata patch, and only for definitions that
        declare attributes; the drive goes on from the object it left."""
        declared = revision["data"].get("searchAttributes") or {}
        have = d.body["metadata"].get("labels") or {}
        add = {
            k: v for k, v in attributes.labels_for(d.view.params, declared).items() if k not in have
        }
        if add:
            d.body = await self.kube.patch(
                API_VERSION, INSTANCE, d.view.name, d.view.namespace, {"metadata": {"labels": add}}
            )

    def _admit(self, d: Drive, tenant: str, limits: TenantLimits, resume: bool = False) -> bool:
        """Concurrency cap (FIFO queue) and start rate; False = stays Queued for now.
        `resume`: a parent taking back the slot it lent to its children."""
        cap = limits.max_concurrent_instances
        decision = self.admission.try_start(
            tenant,
            d.key,
            d.view.created,
            max_concurrent=cap,
            starts_per_second=float(limits.max_instance_starts_per_second),
            resume=resume,
        )
        metrics.QUEUE_DEPTH.labels(tenant=tenant).set(self.admission.queue_depth(tenant))
        log.debug("admission", instance=d.key, verdict=decision.verdict, cap=cap)
        if decision.verdict == "start":
            return True
        if decision.verdict == "throttled":
            metrics.RATE_LIMITED.labels(tenant=tenant, limit="instanceStarts").inc()
            d.later(decision.wait)
            reason = "StartRateLimited"
            message = "waiting for the tenant's maxInstanceStartsPerSecond budget"
        else:
            metrics.RATE_LIMITED.labels(tenant=tenant, limit="concurrentInstances").inc()
            reason = "ConcurrencyLimit"
            message = (
                f"{cap} instances are active (maxConcurrentInstances); this one starts "
                "when a slot frees, in creation order"
            )
        d.condition(ConditionType.ADMITTED, False, reason, message, phase=Phase.QUEUED)
        return False

    async def _limits(self, tenant: str) -> TenantLimits:
        """The tenant's spec.limits, decoded, re-read at most once a second."""
        limits = self.limits.get(tenant)
        return limits if limits is not None else await self._read_tenant(tenant)

    async def _read_tenant(self, tenant: str) -> TenantLimits:
        """One read of the Tenant for both of what drives keep of it: its limits and its
        keepFinishedFor (a drive that finishes an instance needs both)."""
        spec = ((await self.kube.get(API_VERSION, TENANT, tenant)) or {}).get("spec") or {}
        limits = TenantLimits.model_validate(spec.get("limits") or {})
        self.limits.put(tenant, limits)
        raw = (spec.get("history") or {}).get("keepFinishedFor")
        keep = parse_duration(raw, field="spec.history.keepFinishedFor") if raw else UNSET
        self.keep_for.put(tenant, (keep, time.monotonic()))
        return limits

    async def _expire(self, d: Drive) -> None:
        expiry = self._expiry(d.view, await self._keep_for(d.view.tenant or ""))
        if expiry is None:
            return
        if expiry > d.now:
            d.wake_at = expiry
        elif await self.archiver.keep(d):  # archived first: deleted only once it is kept
            await self.kube.delete(API_VERSION, INSTANCE, d.view.name, d.view.namespace)

    async def _keep_for(self, tenant: str) -> float | None:
        """How long the tenant's finished instances stay objects: its
        spec.history.keepFinishedFor, else the operator's TTL (None: for ever)."""
        known = self.keep_for.get(tenant)
        if known is None or time.monotonic() - known[1] > KEEP_FOR_TTL:
            await self._read_tenant(tenant)
        return self._known_keep_for(tenant)

    def _known_keep_for(self, tenant: str) -> float | None:
        """As last read (however long ago: a wake-up must not move later for a cache's
        sake), else the operator's TTL."""
        known = self.keep_for.get(tenant)
        if known is not None and known[0] != UNSET:
            return known[0]
        return self.settings.finished_ttl or None

    def _expiry(self, v: InstanceView, keep: float | None = None) -> dt.datetime | None:
        """When a finished instance is archived and deleted (None: never): at once when
        asked (ARCHIVE_NOW_ANNOTATION), else its tenant's keepFinishedFor after it ended."""
        done = v.status.get("finishedAt")
        if v.phase == Phase.ROLLBACK_FAILED:
            return None  # kept until a person retries (or deletes) it: undo is owed
        if v.archive_now and done:
            return parse_time(done)
        keep = keep if keep is not None else self._known_keep_for(v.tenant or "")
        if keep is None or not done:
            return None
        return parse_time(done) + dt.timedelta(seconds=keep)

    def _wake_at_next(self, key: ObjectKey, status: InstanceStatus) -> None:
        wake = parse_time(at) if (at := status.get("nextWakeAt")) else None
        self.book.wakes_at(key, tenant_of(split_key(key)[0]), wake)  # (idle sandboxes)
        if wake is not None:
            self.queue.request_after(key, wake)
        self._resync_children(key, status)

    def _resync_children(self, key: ObjectKey, status: InstanceStatus) -> None:
        """A parent awaiting children runs again when its trust in the watch runs out, to
        read them all (see children.py): a finish the watch lost cannot strand it."""
        if state.awaited_steps(status.get("steps") or []):
            self.queue.request_within(key, self.children.resync_in(key))

    def tenant_usage(self, tenant: str) -> dict[str, int]:
        """Tenant.status.usage: counted as phases are observed, never by listing."""
        return self.book.tenant_usage(tenant)
