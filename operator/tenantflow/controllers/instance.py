"""WorkflowInstance controller: drive each instance through the sandbox, journal in status.

Raw kopf event handlers (no per-object bookkeeping writes): every event requests one
coalesced `drive` of that instance; sleeping/waiting instances are woken by the shared
WakeupScheduler. Status writes carry the resourceVersion read at the start, so a
concurrent change makes the write fail (409) and the instance is driven again from
the fresh status — unless the journal is unchanged (an event was appended), in which
case the same result is committed again on the fresh object. Entries are never lost or
reordered.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from dataclasses import dataclass, field
from typing import Any

from tenantflow import conditions
from tenantflow.api.tenant import NAMESPACE_PREFIX
from tenantflow.cache import Cache
from tenantflow.controllers import runtime
from tenantflow.controllers import tenant as tenant_controller
from tenantflow.controllers.sandboxes import Sandboxes
from tenantflow.durations import parse_duration, parse_time
from tenantflow.engine.options import EngineLimits, RetryPolicy, StepDefaults
from tenantflow.kube import events
from tenantflow.kube.client import ApiException, Kube
from tenantflow.kube.reflector import reflect
from tenantflow.observability import metrics
from tenantflow.observability.logging import get_logger
from tenantflow.quantity import parse_quantity
from tenantflow.sandbox.payload import advance_payload
from tenantflow.sandbox.transport import HttpTransport, SandboxUnavailable
from tenantflow.scheduler import WakeupScheduler
from tenantflow.supervisor.admission import DELETED, Admission
from tenantflow.supervisor.fair_queue import FairDispatcher
from tenantflow.supervisor.token_bucket import TokenBucket, tuned
from tenantflow.supervisor.usage import UsageTracker
from tenantflow.workflows import instance_state as state
from tenantflow.workflows.revisions import DEFINITION_LABEL, REVISION_LABEL

log = get_logger("tenantflow.instance")
API_VERSION = "tenantflow.dev/v1alpha1"
SANDBOX_STARTING = frozenset({"SandboxNotReady", "SandboxNotProvisioned"})
WORKER_LOSSES_BEFORE_ERROR = 3
USAGE_INTERVAL = 5.0  # Tenant.status.usage refresh, at most this often per tenant
LIMITS_TTL = 1.0  # seconds a tenant's limits are reused before being read again
FRESH_BODIES = 2000  # bodies kept to spare their next drive a GET, at most
REMEMBER_WITHIN = dt.timedelta(seconds=60)  # ...when that drive is due this soon
COMMIT_RETRIES = 3  # re-commits of one advance after 409s that left the journal as it was


@dataclass
class InstanceDriver:
    kube: Kube
    sandboxes: Sandboxes
    transport: HttpTransport = field(default_factory=HttpTransport)
    finished_ttl: float = float(os.environ.get("TENANTFLOW_FINISHED_TTL_SECONDS", 7 * 86400))
    failures: dict[str, int] = field(default_factory=dict)
    worker_losses: dict[str, int] = field(default_factory=dict)
    phases: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.queue = runtime.KeyedWorkQueue(
            self.drive, workers=int(os.environ.get("TENANTFLOW_DRIVE_WORKERS", 64))
        )
        self.timers = WakeupScheduler(self.queue.request)
        self.admission = Admission()
        self.dispatcher = FairDispatcher(int(os.environ.get("TENANTFLOW_DISPATCH_SLOTS", 16)))
        self.event_buckets: dict[str, TokenBucket] = {}
        self.usage_pending: set[str] = set()
        self.usage = UsageTracker()
        self.fresh: dict[str, dict[str, Any]] = {}  # see created() and _remember()
        self.limits: Cache[str, dict[str, Any]] = Cache(maxsize=4096, ttl=LIMITS_TTL)

    def tenant_usage(self, tenant: str) -> dict[str, int]:
        """Tenant.status.usage: counted as phases are observed, never by listing."""
        return self.usage.report(tenant, self.admission.queue_depth(tenant))

    def _usage_changed(self, tenant: str) -> None:
        """Tenant.status.usage follows instance phases, refreshed at most every 5 s."""
        if tenant in self.usage_pending:
            return
        self.usage_pending.add(tenant)

        def refresh() -> None:
            self.usage_pending.discard(tenant)
            tenant_controller.queue().request(tenant)

        asyncio.get_running_loop().call_later(USAGE_INTERVAL, refresh)

    async def rebuild(self) -> None:
        """Admission state from the CRs (operator start): active ones hold their slots,
        the not yet started queue in creation order."""
        async for page, _ in self.kube.list_pages(API_VERSION, "WorkflowInstance"):
            for inst in page:
                self._rebuild_one(inst)

    def _rebuild_one(self, inst: dict[str, Any]) -> None:
        meta, st = inst["metadata"], inst.get("status") or {}
        tenant = meta["namespace"].removeprefix(NAMESPACE_PREFIX)
        if st.get("revision") is None and st.get("phase") not in state.FINISHED:
            self.admission.enqueue(tenant, _key(inst), meta.get("creationTimestamp", ""))
        else:
            self.admission.observe(tenant, _key(inst), st.get("phase"))

    def _event_budget(self, key: str, tenant: str, new: int, rate: float, now: dt.datetime) -> int:
        """How many of `new` events may be delivered now (maxEventsPerSecond)."""
        if new <= 0:
            return 0
        bucket = self.event_buckets[tenant] = tuned(
            self.event_buckets.get(tenant), rate, max(1.0, rate)
        )
        allowed = 0
        while allowed < new and bucket.try_take():
            allowed += 1
        if allowed < new:
            metrics.RATE_LIMITED.labels(tenant=tenant, limit="events").inc()
            self.timers.schedule(key, now + dt.timedelta(seconds=max(bucket.wait_time(), 0.05)))
        return allowed

    # ------------------------------------------------------------------ the loop
    def on_event(self, kind: str, inst: dict[str, Any]) -> None:
        """One watched state: drive the instance unless it has nothing to do."""
        key = _key(inst)
        held = self.fresh.get(key)
        if held and held["metadata"]["resourceVersion"] != inst["metadata"].get("resourceVersion"):
            del self.fresh[key]  # changed since we wrote it: the next drive reads it afresh
        if kind == "DELETED":
            self.fresh.pop(key, None)
        elif kind == "ADDED":
            self.created(key, inst)
        elif self.settled(key, inst):
            return
        self.queue.request(key)

    def relisted(self, keys: set[tuple[str, str]]) -> None:
        """After a full list: instances we track that it no longer holds were deleted
        while no watch was open; a drive finds them gone and cleans up."""
        for key in [k for k in self.phases if tuple(k.split("/", 1)) not in keys]:
            self.queue.request(key)

    def created(self, key: str, inst: dict[str, Any]) -> None:
        """Keep a just-created instance's body for its first drive, saving the GET.

        Safe because nothing can have written its status yet: a new object's ADDED event
        comes before any event of a write to it, and only a drive (which needs an event or
        the start-up listing) writes status. Bounded, so a burst of creations is not held in
        memory; beyond the bound the drive reads the object as usual."""
        if not inst.get("status") and key not in self.phases and len(self.fresh) < FRESH_BODIES:
            self.fresh[key] = inst

    def settled(self, key: str, inst: dict[str, Any]) -> bool:
        """True when a watched state needs no drive, only bookkeeping: finished (expiry
        ahead), or Waiting with nothing due. Most events are the echo of our own status
        write, and this skips a GET for each. Deciding "nothing to do" from a watched body
        is safe even if it is not the newest: watch events arrive in order, so any later
        change brings its own event; deciding "work to do" always reads afresh (drive)."""
        if self.queue.busy(key):
            return False  # a drive is running or due: it reads the newest state anyway
        spec, st = inst.get("spec") or {}, inst.get("status") or {}
        phase, now = st.get("phase"), dt.datetime.now(dt.UTC)
        tenant = inst["metadata"]["namespace"].removeprefix(NAMESPACE_PREFIX)
        if phase in state.FINISHED:
            if not self.finished_ttl or not st.get("finishedAt"):
                self._track(key, tenant, phase)
                return True
            expiry = parse_time(st["finishedAt"]) + dt.timedelta(seconds=self.finished_ttl)
            if expiry <= now:
                return False  # the drive deletes it
            self._track(key, tenant, phase)
            self.timers.schedule(key, expiry)
            return True
        idle = (
            phase == "Waiting"
            and st.get("revision") is not None
            and not spec.get("terminate")
            and not spec.get("suspend")
            and not state.needs_advance(st, spec.get("events") or [], now)
        )
        if idle:
            self._track(key, tenant, phase)
            self._schedule(key, st)
        return idle

    async def drive(self, key: str) -> None:
        ns, name = key.split("/", 1)
        inst = self.fresh.pop(key, None) or await self.kube.get(
            API_VERSION, "WorkflowInstance", name, ns
        )
        if inst is None:
            self.timers.cancel(key)
            self._track(key, None, None)
            return
        tenant = ns.removeprefix(NAMESPACE_PREFIX)
        spec, st = inst["spec"], inst.get("status") or {}
        now = dt.datetime.now(dt.UTC)
        self._track(key, tenant, st.get("phase"))
        if st.get("phase") in state.FINISHED:
            await self._expire(key, inst, now)
            return
        if spec.get("terminate"):
            await self._write(
                inst,
                state.finished("Terminated", now),
                event=("Normal", "Terminated", "terminated by spec.terminate"),
            )
            return
        if not ns.startswith(NAMESPACE_PREFIX):
            await self._condition(
                inst,
                "Admitted",
                False,
                "NotATenantNamespace",
                f"namespace {ns} is not a tenant namespace (tenant-<name>)",
            )
            return
        if spec.get("suspend"):
            if st.get("phase") != "Paused":
                await self._write(
                    inst,
                    {"phase": "Paused"},
                    event=("Normal", "Paused", "suspended by spec.suspend"),
                )
            return
        if st.get("phase") == "Paused":
            st = {**st, "phase": "Running"}
        revision = await self._revision(inst)
        if revision is None:
            return
        limits = await self._limits(tenant)
        if st.get("revision") is None:
            if not await self._admit(key, tenant, inst, limits, now):
                return
            st = {**st, **state.started(revision["revision"], now)}
            metrics.INSTANCE_STARTS.labels(tenant=tenant).inc()
            self.usage.started(tenant)
        if not state.needs_advance(st, spec.get("events") or [], now):
            self._schedule(key, st)
            return
        await self._advance(key, tenant, inst, st, revision, limits, now)

    async def _admit(
        self, key: str, tenant: str, inst: dict[str, Any], limits: dict[str, Any], now: dt.datetime
    ) -> bool:
        """Concurrency cap (FIFO queue) and start rate; False = stays Queued for now."""
        cap = limits.get("maxConcurrentInstances", 100)
        decision = self.admission.try_start(
            tenant,
            key,
            inst["metadata"].get("creationTimestamp", ""),
            max_concurrent=cap,
            starts_per_second=float(limits.get("maxInstanceStartsPerSecond", 10)),
        )
        metrics.QUEUE_DEPTH.labels(tenant=tenant).set(self.admission.queue_depth(tenant))
        log.debug(
            "admission",
            instance=key,
            verdict=decision.verdict,
            active=self.admission.active(tenant),
            cap=cap,
        )
        if decision.verdict == "start":
            return True
        if decision.verdict == "throttled":
            metrics.RATE_LIMITED.labels(tenant=tenant, limit="instanceStarts").inc()
            self.timers.schedule(key, now + dt.timedelta(seconds=decision.wait))
            reason = "StartRateLimited"
            message = "waiting for the tenant's maxInstanceStartsPerSecond budget"
        else:
            metrics.RATE_LIMITED.labels(tenant=tenant, limit="concurrentInstances").inc()
            reason = "ConcurrencyLimit"
            message = (
                f"{cap} instances are active (maxConcurrentInstances); this one starts "
                "when a slot frees, in creation order"
            )
        await self._condition(inst, "Admitted", False, reason, message, phase="Queued")
        return False

    async def _advance(
        self,
        key: str,
        tenant: str,
        inst: dict[str, Any],
        st: dict[str, Any],
        revision: dict[str, Any],
        limits: dict[str, Any],
        now: dt.datetime,
    ) -> None:
        all_events = inst["spec"].get("events") or []
        seen_before = st.get("eventsSeen") or []
        deliver = self._event_budget(
            key,
            tenant,
            len(all_events) - len(seen_before),
            float(limits.get("maxEventsPerSecond", 50)),
            now,
        )
        events, seen = state.inbox(all_events[: len(seen_before) + deliver], seen_before, now)
        data = revision["data"]
        payload = advance_payload(
            source=data["source"],
            entrypoint=data.get("entrypoint", "run"),
            name=inst["spec"]["workflowRef"]["name"],
            instance_id=inst["metadata"]["name"],
            params=inst["spec"].get("params"),
            started_at=st["startedAt"],
            journal=st.get("steps") or [],
            inbox=events,
            defaults=_defaults(data.get("defaults") or {}),
            limits=EngineLimits(
                max_steps=limits.get("maxStepsPerInstance", 1000),
                max_step_timeout=float(limits.get("maxStepTimeoutSeconds", 900)),
            ),
            max_bytes=int(parse_quantity(limits.get("storage", "1Gi"))),
            ops_per_second=limits.get("maxStorageOpsPerSecond", 500),
            lost_attempts=st.get("lostAttempts"),
        )
        try:
            async with self.dispatcher.slot(tenant):  # fair across tenants
                started = time.perf_counter()
                endpoint = await self.sandboxes.endpoint(tenant)
                result = await self.transport.advance(endpoint, payload)
                metrics.SANDBOX_INVOKE.labels(tenant=tenant).observe(time.perf_counter() - started)
        except SandboxUnavailable as exc:
            await self._sandbox_failed(key, inst, st, exc)
            return
        self.failures.pop(key, None)
        self.worker_losses.pop(key, None)
        _observe_steps(tenant, result)
        update: dict[str, Any] = {
            **_keep(st, "phase"),
            **state.after_advance(result, seen=seen, now=now),
        }
        if st.get("lostAttempts"):
            update["lostAttempts"] = state.unapplied_lost_attempts(
                st["lostAttempts"], result.get("journal") or []
            )
        update["conditions"] = conditions.merge(
            st.get("conditions"),
            [conditions.Condition("SandboxReachable", True, "Reachable")],
            generation=inst["metadata"].get("generation"),
        )
        for line in result.get("logs", []):  # tenant-chosen names stay inside `wf_fields`
            log.info(
                "workflow log",
                tenant=tenant,
                instance=key,
                wf_ts=line.get("ts"),
                wf_level=line.get("level"),
                wf_message=line.get("message"),
                wf_fields=line.get("fields"),
            )
        event = None
        if update["phase"] == "Complete":
            event = ("Normal", "Completed", "run() returned")
        elif update["phase"] == "Errored":
            err = update["error"]
            where = f" in step {err['step']!r}" if err.get("step") else ""
            event = ("Warning", err["name"], f"{err['name']}{where}: {err['message']}")
        written = await self._commit(inst, st, update, event)
        if written is None:
            self.queue.request(key)  # the journal moved under us: drive again from it
            return
        if update["phase"] in state.FINISHED:
            metrics.INSTANCE_FINISHED.labels(tenant=tenant, phase=update["phase"]).inc()
        elif update["phase"] == "Running":
            self.queue.request(key)  # the batch budget was spent: continue at once
        else:
            self._schedule(key, update)

    # ------------------------------------------------------------------ helpers
    async def _revision(self, inst: dict[str, Any]) -> dict[str, Any] | None:
        """The ControllerRevision this instance runs (pinned once it started)."""
        ns, spec, st = inst["metadata"]["namespace"], inst["spec"], inst.get("status") or {}
        ref = spec["workflowRef"]
        number = (
            st.get("revision")
            or ref.get("revision")
            or runtime.get().active_revisions.get((ns, ref["name"]))
        )
        if number is None:
            definition = await self.kube.get(API_VERSION, "WorkflowDefinition", ref["name"], ns)
            number = ((definition or {}).get("status") or {}).get("activeRevision")
            if number is not None:
                runtime.get().active_revisions.put((ns, ref["name"]), number)
            else:
                reason = "DefinitionNotFound" if definition is None else "DefinitionNotReady"
                await self._condition(
                    inst,
                    "Admitted",
                    False,
                    reason,
                    f"WorkflowDefinition {ref['name']} is missing or has no "
                    "ready revision yet; the instance stays Queued",
                    phase="Queued",
                )
                self.timers.schedule(_key(inst), _later(5))
                return None
        cache_key = (ns, ref["name"], int(number))
        cached = runtime.get().revisions.get(cache_key)
        if cached is not None:
            return cached
        found = await self.kube.list(
            "apps/v1",
            "ControllerRevision",
            ns,
            f"{DEFINITION_LABEL}={ref['name']},{REVISION_LABEL}={number}",
        )
        if not found:
            await self._condition(
                inst,
                "Admitted",
                False,
                "RevisionNotFound",
                f"revision {number} of {ref['name']} does not exist",
                phase="Queued" if not st.get("revision") else None,
            )
            self.timers.schedule(_key(inst), _later(10))
            return None
        runtime.get().revisions.put(cache_key, found[0])
        return found[0]

    async def _limits(self, tenant: str) -> dict[str, Any]:
        """The tenant's spec.limits, re-read at most once a second (not once per drive)."""
        limits = self.limits.get(tenant)
        if limits is None:
            tenant_obj = await self.kube.get(API_VERSION, "Tenant", tenant)
            limits = ((tenant_obj or {}).get("spec") or {}).get("limits") or {}
            self.limits.put(tenant, limits)
        return limits

    async def _sandbox_failed(
        self, key: str, inst: dict[str, Any], st: dict[str, Any], exc: SandboxUnavailable
    ) -> None:
        if exc.lost_steps and exc.cause:  # those step attempts failed: the steps' retries
            await self._charge_steps(key, inst, st, exc.lost_steps, exc.cause)
            return
        count = self.failures[key] = self.failures.get(key, 0) + 1
        # worker losses in a row, apart from other failures: a sandbox that was not ready
        # or not reachable in between says nothing about the workflow's code
        losses = self.worker_losses.get(key, 0) + (exc.reason == "SandboxWorkerLost")
        self.worker_losses[key] = losses
        self.sandboxes.forget(inst["metadata"]["namespace"].removeprefix(NAMESPACE_PREFIX))
        log.warning(
            "sandbox call failed", instance=key, reason=exc.reason, error=str(exc), attempt=count
        )
        if exc.reason == "SandboxWorkerLost" and losses >= WORKER_LOSSES_BEFORE_ERROR:
            self.failures.pop(key, None)
            self.worker_losses.pop(key, None)
            now = dt.datetime.now(dt.UTC)
            error = {
                "name": "SandboxWorkerLost",
                "message": f"{exc} ({losses} times in a row; the workflow code is likely "
                "exhausting CPU or memory, or exiting the process)",
            }
            await self._write(
                inst,
                {**_keep(st), **state.finished("Errored", now, error=error)},
                event=("Warning", "SandboxWorkerLost", error["message"]),
            )
            return
        await self._condition(inst, "SandboxReachable", False, exc.reason, str(exc))
        # a sandbox pod on its way (a new tenant, a restart) is ready within seconds: look
        # again soon, then back off as for any other failure
        first = 0.5 if exc.reason in SANDBOX_STARTING else 2.0
        self.timers.schedule(key, _later(min(first * 2 ** (count - 1), 60)))

    async def _charge_steps(
        self,
        key: str,
        inst: dict[str, Any],
        st: dict[str, Any],
        lost: dict[str, int],
        cause: dict[str, str],
    ) -> None:
        """Record step attempts killed with their process as failed attempts; the next
        advance retries them by their own policy (or errors them), like any failure."""
        self.failures.pop(key, None)
        recorded = state.charge_lost_attempts(
            st.get("lostAttempts") or {}, st.get("steps") or [], lost, cause
        )
        names = ", ".join(sorted(lost))
        log.warning("step attempts lost", instance=key, steps=lost, cause=cause["name"])
        written = await self._write(
            inst,
            {**_keep(st, "phase"), "lostAttempts": recorded},
            event=("Warning", cause["name"], f"step(s) {names}: {cause['message']}"[:1000]),
        )
        self.timers.schedule(key, _later(0 if written else 1))

    async def _condition(
        self,
        inst: dict[str, Any],
        ctype: str,
        ok: bool,
        reason: str,
        message: str,
        phase: str | None = None,
    ) -> None:
        st = inst.get("status") or {}
        existing = st.get("conditions") or []
        mine = [c for c in existing if c.get("type") == ctype]
        conds = conditions.merge(
            mine,
            [conditions.Condition(ctype, ok, reason, message)],
            generation=inst["metadata"].get("generation"),
        )
        if mine == conds:
            return
        others = [c for c in existing if c.get("type") != ctype]
        update: dict[str, Any] = {"conditions": others + conds}
        if phase and not st.get("phase"):
            update["phase"] = phase
        await self._write(inst, update, event=("Warning", reason, message) if not ok else None)

    async def _commit(
        self,
        inst: dict[str, Any],
        base: dict[str, Any],
        update: dict[str, Any],
        event: tuple[str, str, str] | None,
    ) -> dict[str, Any] | None:
        """Write an advance's result. On a 409 caused by a change that left the journal
        as we read it (a new event appended to spec, a label), retry on the fresh object:
        the result still extends that journal, so its steps need not run again."""
        for _ in range(COMMIT_RETRIES):
            written = await self._write(inst, update, event=event)
            if written is not None:
                return written
            meta = inst["metadata"]
            fresh = await self.kube.get(
                API_VERSION, "WorkflowInstance", meta["name"], meta["namespace"]
            )
            current = (fresh or {}).get("status") or {}
            if fresh is None or any(current.get(k) != base.get(k) for k in ("steps", "eventsSeen")):
                return None
            inst = fresh
        return None

    async def _write(
        self,
        inst: dict[str, Any],
        status: dict[str, Any],
        event: tuple[str, str, str] | None = None,
    ) -> dict[str, Any] | None:
        """Status merge-patch guarded by resourceVersion; None on a conflict (409)."""
        meta = inst["metadata"]
        body = {
            "metadata": {"resourceVersion": meta["resourceVersion"]},
            "status": {**status, "observedGeneration": meta.get("generation")},
        }
        try:
            out = await self.kube.patch(
                API_VERSION,
                "WorkflowInstance",
                meta["name"],
                meta["namespace"],
                body,
                subresource="status",
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                return None
            raise
        self._remember(_key(inst), out)
        if event:
            await events.post(self.kube, inst, *event)
        return out

    def _remember(self, key: str, written: dict[str, Any]) -> None:
        """Keep the object as our status write left it when its next drive is soon (a short
        sleep, a retry, a continuation): that drive then needs no GET. Safe because only the
        operator writes status, so this is the newest journal; a spec change since (an
        event, suspend, terminate) fails the next write with 409 and the commit re-reads;
        and a watch event with another resourceVersion drops it (on_event)."""
        st = written.get("status") or {}
        wake = st.get("nextWakeAt")
        soon = st.get("phase") == "Running" or (
            wake is not None and parse_time(wake) - dt.datetime.now(dt.UTC) < REMEMBER_WITHIN
        )
        if soon and len(self.fresh) < FRESH_BODIES:
            self.fresh[key] = written

    async def _expire(self, key: str, inst: dict[str, Any], now: dt.datetime) -> None:
        done = (inst.get("status") or {}).get("finishedAt")
        if not self.finished_ttl or not done:
            return
        expiry = parse_time(done) + dt.timedelta(seconds=self.finished_ttl)
        if expiry <= now:
            meta = inst["metadata"]
            await self.kube.delete(API_VERSION, "WorkflowInstance", meta["name"], meta["namespace"])
        else:
            self.timers.schedule(key, expiry)

    def _schedule(self, key: str, st: dict[str, Any]) -> None:
        if st.get("nextWakeAt"):
            self.timers.schedule(key, parse_time(st["nextWakeAt"]))

    def _track(self, key: str, tenant: str | None, phase: str | None) -> None:
        """Metrics and admission follow every observed phase; freed slots wake the queue."""
        old = self.phases.pop(key, None)
        if old:
            metrics.INSTANCES.labels(tenant=old[0], phase=old[1]).dec()
        if tenant and phase:
            self.phases[key] = (tenant, phase)
            metrics.INSTANCES.labels(tenant=tenant, phase=phase).inc()
        owner = tenant or (old[0] if old else None)
        if owner is None:
            return
        self.usage.phase_changed(owner, old[1] if old else None, phase if tenant else None)
        for woken in self.admission.observe(owner, key, phase if tenant else DELETED):
            self.queue.request(woken)
        metrics.QUEUE_DEPTH.labels(tenant=owner).set(self.admission.queue_depth(owner))
        if (old[1] if old else None) != phase:
            self._usage_changed(owner)


def _observe_steps(tenant: str, result: dict[str, Any]) -> None:
    """Step metrics from one advance: attempts by outcome, durations of finished steps."""
    executed = result.get("executed", [])
    for _step, outcome in executed:
        metrics.STEP_ATTEMPTS.labels(tenant=tenant, outcome=outcome).inc()
    ran = {name for name, _ in executed}
    for entry in result.get("journal", []):
        if entry["name"] in ran and entry.get("finishedAt") and entry.get("startedAt"):
            seconds = parse_time(entry["finishedAt"]) - parse_time(entry["startedAt"])
            metrics.STEP_DURATION.labels(tenant=tenant).observe(seconds.total_seconds())


def _key(inst: dict[str, Any]) -> str:
    return f"{inst['metadata']['namespace']}/{inst['metadata']['name']}"


def _later(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


def _keep(st: dict[str, Any], *extra: str) -> dict[str, Any]:
    """The fields that pin an instance's run (kept across every status write)."""
    return {k: st[k] for k in ("revision", "startedAt", *extra) if k in st}


def _defaults(spec: dict[str, Any]) -> StepDefaults:
    """StepDefaults from a definition's spec.defaults (as stored in the revision)."""
    retries = spec.get("retries") or {}
    policy = RetryPolicy().merged(retries, step="(definition defaults)")
    timeout = parse_duration(spec.get("timeout", "10m"), field="spec.defaults.timeout")
    return StepDefaults(retries=policy, timeout=timeout)


def driver() -> InstanceDriver:
    rt = runtime.get()
    if rt.instances is None:
        rt.instances = InstanceDriver(rt.kube, Sandboxes(rt.kube))
    return rt.instances


async def watch_instances(instances: InstanceDriver) -> None:
    """Feed every WorkflowInstance event to the driver (a lean reflector, not kopf)."""
    await reflect(
        instances.kube, API_VERSION, "WorkflowInstance", instances.on_event, instances.relisted
    )
