"""Tenant controller: provision `tenant-<name>`, keep it as declared, tear it down.

Reconciliation is level-based: every Tenant event and every event on an object the
tenant owns requests one coalesced reconcile, which server-side-applies the desired
objects (restoring anything changed or deleted by hand) and recomputes the status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import kopf

from tenantflow import conditions
from tenantflow.api.tenant import Tenant
from tenantflow.controllers.claims import StorageClasses
from tenantflow.controllers.ownership import Gate, sole_replica
from tenantflow.controllers.persist import Persist, unchanged_spec
from tenantflow.controllers.work_queue import WorkQueue
from tenantflow.durations import parse_duration, parse_time
from tenantflow.errors import TenantflowError
from tenantflow.kube.client import ApiException, KubeApi, message
from tenantflow.kube.events import EventRecorder
from tenantflow.observability import metrics
from tenantflow.observability.logging import get_logger
from tenantflow.tenancy import egress, idle, manifests, status
from tenantflow.tenancy.manifests import OperatorSettings
from tenantflow.vocabulary import (
    API_VERSION,
    FINISHED,
    INSTANCE,
    SCHEDULE,
    TENANT,
    TENANT_LABEL,
    ConditionType,
    ObjectKey,
    namespace_of,
)

log = get_logger("tenantflow.tenant")


SECRETS_RECHECK = 10.0  # seconds between looks for Secrets the Tenant names but lacks
WAKE_PROBE_EVERY = 0.1  # seconds between two asks of a starting sandbox's runner
WAKE_PROBE_OFTEN_FOR = 10.0  # ...for its first seconds; then every WAKE_PROBE_SLOWLY
WAKE_PROBE_SLOWLY = 1.0
WAKE_PROBE_FOR = 300.0  # ...for at most this long (then the pod's own readiness decides)
UNBOUND_RECHECK = 2.0  # seconds: a held pod's claims, looked at again (their events first)


@dataclass(frozen=True)
class Reconciled:
    written: bool  # its status is as observed (False: not written; run again)
    missing_secrets: bool = False  # Secrets it names do not exist yet (looked at again)
    look_again: dt.datetime | None = None  # its sandbox's scale may change then (idle)


@dataclass
class Idle:
    """What the tenant controller needs to scale idle sandboxes to zero and back
    (tenancy/idle.py), handed over by the composition root: the memory it shares with the
    sandbox lookups, and callbacks into the instance controller."""

    demand: idle.SandboxDemand = field(default_factory=idle.SandboxDemand)
    busy: Callable[[str], int] = lambda tenant: 0  # the tenant's sandbox calls under way
    # the tenant's earliest wake-up of a waiting instance at or after a time
    next_wake: Callable[[str, dt.datetime], dt.datetime | None] = lambda tenant, after: None
    woken: Callable[[Iterable[ObjectKey]], None] = lambda keys: None  # drive these instances now
    # whether the tenant's runner answers its readiness check now, asked by the operator
    # itself (controllers/sandboxes.py): a sandbox starting from zero is ready sooner than
    # the kubelet's probe (1 s period), the StatefulSet and the EndpointSlice can say
    runner_answers: Callable[[str], Awaitable[bool]] = lambda tenant: _no()


async def _no() -> bool:
    return False


class TenantNotApplied(TenantflowError):
    """Some of a tenant's objects could not be applied (the API server refused them): the
    Tenant says so (Degraded), and its reconcile is retried with the queue's backoff
    rather than waiting for the next change to it."""


TERMINATION_GRACE = dt.timedelta(seconds=60)
USAGE_INTERVAL = 5.0  # Tenant.status.usage refresh, at most this often per tenant

# Owned kinds whose changes trigger a reconcile of their tenant (drift repair).
OWNED = (
    ("", "v1", "namespaces"),
    ("", "v1", "resourcequotas"),
    ("", "v1", "limitranges"),
    ("", "v1", "serviceaccounts"),
    ("", "v1", "services"),
    ("", "v1", "secrets"),
    ("", "v1", "persistentvolumeclaims"),
    ("apps", "v1", "statefulsets"),
    ("apps", "v1", "deployments"),
    ("networking.k8s.io", "v1", "networkpolicies"),
    ("rbac.authorization.k8s.io", "v1", "roles"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
)


@dataclass
class TenantController:
    kube: KubeApi
    settings: OperatorSettings
    usage: Callable[[str], dict[str, int]]  # Tenant.status.usage, from the instance controller
    # whether this replica may work on a tenant's namespace now (controllers/ownership.py):
    # asked by the queue before every reconcile and by the persist before the status write
    gate: Gate = sole_replica
    recorder: EventRecorder | None = None  # the operator's one recorder (else its own)
    idle: Idle = field(default_factory=Idle)

    def __post_init__(self) -> None:
        self.events = self.recorder or EventRecorder(self.kube)
        self.queue: WorkQueue[str] = WorkQueue(
            self.reconcile,
            name="tenants",
            gate=lambda namespace: self.gate(namespace),
            namespace_of=namespace_of,  # the queue's keys are tenant names
        )
        self.persist = Persist(self.kube, self.queue.gate)
        self.probing: dict[str, asyncio.Task[None]] = {}  # tenants whose runner is asked
        self.storage = StorageClasses(self.kube)

    def usage_changed(self, tenant: str) -> None:
        """Tenant.status.usage follows instance phases, refreshed at most every 5 s."""
        self.queue.request_within(tenant, USAGE_INTERVAL)

    async def reconcile(self, name: str) -> None:
        done = await reconcile(
            self.kube,
            self.events,
            self.persist,
            self.settings,
            self.usage,
            name,
            self.idle,
            self.storage,
        )
        if done.look_again is not None:  # (a run-later due sooner stands)
            due = self.queue.due_at(name)
            if due is None or due > done.look_again:
                self.queue.request_after(name, done.look_again)
        if self.idle.demand.awaited(name) and name not in self.probing:
            task = asyncio.create_task(self._until_runner_answers(name))
            self.probing[name] = task
            task.add_done_callback(lambda _: self.probing.pop(name, None))
        if not done.written:
            self.queue.request(name)  # its status was not written: again, if still ours
        elif done.missing_secrets:  # a platform's Secrets raise no event of ours: look again
            self.queue.request_within(name, SECRETS_RECHECK)
        elif self.usage(name).get("startsLastMinute"):
            # the window empties with time alone, when no phase change may come to refresh
            # it: read again until it is empty, or startsLastMinute would stay as it was
            self.queue.request_within(name, USAGE_INTERVAL)

    async def _until_runner_answers(self, name: str) -> None:
        """A sandbox starting from zero: ask its runner every WAKE_PROBE_EVERY seconds;
        once it answers, the instances that waited for it are driven at once (a tenant
        with an egress proxy waits for the reconcile, which also sees the proxy ready)
        and the tenant is reconciled for its status."""
        started = time.monotonic()
        while self.idle.demand.awaited(name) and time.monotonic() - started < WAKE_PROBE_FOR:
            try:
                if await self.idle.runner_answers(name):
                    await self._runner_answered(name)
                    return
            except Exception:  # (the API or the pod unreachable: the next round asks again)
                log.debug("waking runner not reached", tenant=name, exc_info=True)
            # often while a start is as quick as it should be; then seldom (a sandbox that
            # does not come up is not asked ten times a second for five minutes)
            slow = time.monotonic() - started > WAKE_PROBE_OFTEN_FOR
            await asyncio.sleep(WAKE_PROBE_SLOWLY if slow else WAKE_PROBE_EVERY)

    async def _runner_answered(self, name: str) -> None:
        try:
            body = await self.kube.get(API_VERSION, TENANT, name)
            if body is None or (body.get("spec") or {}).get("sandbox", {}).get("egressHosts"):
                return
            now = dt.datetime.now(dt.UTC)
            woken = self.idle.demand.applied(name, True, True, now)
            if woken is not None:
                await _started(self.events, body, self.idle, woken, "its runner answered")
        finally:
            self.queue.request(name)

    async def deleted(self, name: str, body: dict[str, Any]) -> None:
        self.storage.applied.discard(namespace_of(name))  # a new one of that name is new
        await tenant_deleted(self.kube, self.events, name, body)


async def reconcile(
    kube: KubeApi,
    recorder: EventRecorder,
    persist: Persist,
    settings: OperatorSettings,
    usage: Callable[[str], dict[str, int]],
    name: str,
    idle_sandboxes: Idle | None = None,
    storage: StorageClasses | None = None,
) -> Reconciled:
    """Apply the tenant's objects and write its status (`written` False: it could not be,
    fenced, or a conflict that outlived the re-commits). A new sandbox's StatefulSet waits
    for its claims of Immediate classes to be Bound (controllers/claims.py)."""
    hooks = idle_sandboxes or Idle()
    classes = storage or StorageClasses(kube)
    body = await kube.get(API_VERSION, TENANT, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return Reconciled(written=True)
    tenant = Tenant.model_validate(body)
    ns_name = namespace_of(name)
    ns = await kube.get("v1", "Namespace", ns_name)
    if ns is not None and (ns["metadata"].get("labels") or {}).get(TENANT_LABEL) != name:
        observed = status.Observed(
            conflict=(
                f"namespace {ns_name} already exists and is not managed by tenantflow for tenant "
                f"{name}; delete or rename it, or pick another tenant name"
            )
        )
        return Reconciled(await _write_status(recorder, persist, body, observed, {}))
    error, look_again = None, None
    refused = tuple(manifests.refusals(tenant, settings))
    now = dt.datetime.now(dt.UTC)
    scale, was_zero = await _scale(kube, settings, hooks, tenant, now)
    try:
        sandbox = None
        if not any(reason == status.IMAGE_NOT_ALLOWED for reason, _ in refused):
            proxy = await _proxy_host(kube, tenant)
            sandbox = manifests.sandbox_statefulset(tenant, settings, proxy, awake=scale.awake)
        waking = was_zero and scale.awake
        if waking and sandbox is not None:  # instances wait for it: up first, then the rest
            await kube.apply(sandbox)
        for obj in manifests.owned_objects(tenant, settings, awake=scale.awake):
            await kube.apply(obj)
        # the volumes and the key before the pod that mounts them: a pod created first is
        # unschedulable ("persistentvolumeclaim not found") and waits for the scheduler to
        # look again, minutes when a thousand other claims are being bound
        await kube.create_if_missing(manifests.pvc(tenant))
        await kube.create_if_missing(manifests.history_pvc(tenant))
        await kube.create_if_missing(manifests.hmac_secret(tenant, secrets.token_hex(32)))
        if sandbox is not None and not waking:
            look_again = await _apply_sandbox(kube, classes, sandbox, name, now)
    except ApiException as exc:
        error = f"applying tenant objects failed: {exc.status} {exc.reason}: {message(exc)}"
        log.warning("apply failed", tenant=name, error=error)
    observed = await _observe(kube, tenant, error, refused)
    observed = await _scaled(recorder, body, hooks, scale, observed, was_zero, now)
    written = await _write_status(recorder, persist, body, observed, usage(name))
    if error is not None:  # said on the Tenant; tried again with the queue's backoff
        raise TenantNotApplied(error)
    sooner = [t for t in (look_again, scale.look_again) if t is not None]
    return Reconciled(written, bool(observed.missing_secrets), min(sooner, default=None))


async def _apply_sandbox(
    kube: KubeApi, classes: StorageClasses, sandbox: dict[str, Any], tenant: str, now: dt.datetime
) -> dt.datetime | None:
    """Apply the sandbox StatefulSet, unless it is the first one and a claim of an
    Immediate class is not Bound yet: a pod created now would be unschedulable. Then the
    claims' Bound events reconcile again (and UNBOUND_RECHECK, returned, if one is lost).
    Once applied, a namespace is not checked again by this process."""
    namespace = sandbox["metadata"]["namespace"]
    if namespace not in classes.applied:
        unbound = await classes.unbound(namespace)
        if unbound and not await kube.get("apps/v1", "StatefulSet", manifests.SANDBOX, namespace):
            log.info("sandbox waits for its volumes", tenant=tenant, claims=unbound)
            return now + dt.timedelta(seconds=UNBOUND_RECHECK)
    await kube.apply(sandbox)
    classes.applied.add(namespace)
    return None


async def _scale(
    kube: KubeApi, settings: OperatorSettings, hooks: Idle, tenant: Tenant, now: dt.datetime
) -> tuple[idle.Scale, bool]:
    """Whether its sandbox should run now (tenancy/idle.py), and whether it was at zero."""
    box, name = tenant.spec.sandbox, tenant.metadata.name
    own = parse_duration(box.idle_after, field="spec.sandbox.idleAfter") if box.idle_after else None
    after = idle.idle_after(box.always_on, own, settings.idle_after)
    if after is None or box.replicas == 0:
        return idle.Scale(True, idle.ALWAYS_ON, None), False
    ns = namespace_of(name)
    sts = await kube.get("apps/v1", "StatefulSet", manifests.SANDBOX, ns)
    was_zero = ((sts or {}).get("spec") or {}).get("replicas") == 0
    busy = hooks.busy(name) > 0
    if busy:
        hooks.demand.used(name, now)
    since = now - idle.WAKE_GRACE
    wake = idle.earliest([hooks.next_wake(name, since), *await _schedule_times(kube, ns)], since)
    decided = idle.decide(
        now,
        idle_after=after,
        last_used=hooks.demand.last_used(name, running=not was_zero, now=now),
        busy=busy,
        next_wake=wake,
        cold_start=hooks.demand.cold_start(name),
    )
    return decided, was_zero


async def _schedule_times(kube: KubeApi, ns: str) -> list[dt.datetime | None]:
    """The next run of each of the namespace's WorkflowSchedules that is not suspended (a
    handful per tenant; read only for tenants that may scale to zero)."""
    times: list[dt.datetime | None] = []
    for schedule in await kube.list(API_VERSION, SCHEDULE, ns):
        upcoming = (schedule.get("status") or {}).get("nextRunTimes") or []
        if upcoming and not (schedule.get("spec") or {}).get("suspend"):
            times.append(parse_time(upcoming[0]))
    return times


async def _scaled(
    recorder: EventRecorder,
    body: dict[str, Any],
    hooks: Idle,
    scale: idle.Scale,
    observed: status.Observed,
    was_zero: bool,
    now: dt.datetime,
) -> status.Observed:
    """What was applied, told to the shared memory: a sandbox up again after a start from
    zero measures its cold start and drives the instances that waited for it."""
    name = body["metadata"]["name"]
    before = hooks.demand.state(name)
    ready = observed.sandbox_ready >= observed.sandbox_wanted and observed.proxy_ready is not False
    if not ready and hooks.demand.awaited(name) and observed.proxy_ready is not False:
        ready = await hooks.runner_answers(name)  # (before its pod's readiness says so)
    woken = hooks.demand.applied(name, scale.awake, ready, now, was_zero=was_zero)
    after = hooks.demand.state(name)
    metrics.SANDBOX_SCALED_TO_ZERO.labels(tenant=name).set(0 if scale.awake else 1)
    if after is idle.State.ASLEEP and before is not idle.State.ASLEEP:
        log.info("sandbox scaled to zero", tenant=name)
        await recorder.post(
            body,
            "Normal",
            "SandboxScaledToZero",
            "nothing needed the sandbox for spec.sandbox.idleAfter: scaled to zero (its data "
            "stays); started again on demand",
        )
    if woken is not None:
        await _started(recorder, body, hooks, woken, scale.reason)
    reason = {idle.State.ASLEEP: idle.IDLE, idle.State.WAKING: idle.WAITING_FOR_SANDBOX}.get(
        after, scale.reason
    )
    return dataclasses.replace(observed, scale=reason, waiting=hooks.demand.waiting(name))


async def _started(
    recorder: EventRecorder, body: dict[str, Any], hooks: Idle, woken: idle.Woken, why: str
) -> None:
    """A sandbox up again after a start from zero: its cold start measured and said, the
    instances that waited for it driven."""
    name = body["metadata"]["name"]
    hooks.woken(woken.waiters)  # first: an Event is bookkeeping, the waiters are not
    if woken.cold_start is None:  # up, not from zero: it was not ready yet (a new pod)
        log.info(
            "sandbox ready for the instances that waited", tenant=name, waiting=len(woken.waiters)
        )
        return
    metrics.SANDBOX_COLD_STARTS.labels(tenant=name).inc()
    metrics.SANDBOX_COLD_START.labels(tenant=name).observe(woken.cold_start)
    log.info(
        "sandbox started from zero",
        tenant=name,
        seconds=round(woken.cold_start, 2),
        waiting=len(woken.waiters),
    )
    await recorder.post(
        body,
        "Normal",
        "SandboxStarted",
        f"started from zero in {woken.cold_start:.1f}s for {len(woken.waiters)} waiting "
        f"instance(s) ({why})",
    )


async def _proxy_host(kube: KubeApi, tenant: Tenant) -> str | None:
    """The egress proxy Service's address, for the sandbox's proxy variables (a cluster
    IP: it needs no cluster DNS)."""
    if not tenant.spec.sandbox.egress_hosts:
        return None
    ns = namespace_of(tenant.metadata.name)
    svc = await kube.get("v1", "Service", egress.PROXY, ns)
    ip = ((svc or {}).get("spec") or {}).get("clusterIP")
    return ip if ip and ip != "None" else None


async def _observe(
    kube: KubeApi, tenant: Tenant, error: str | None, refused: tuple[tuple[str, str], ...]
) -> status.Observed:
    ns_name = namespace_of(tenant.metadata.name)
    ns = await kube.get("v1", "Namespace", ns_name)
    pvc = await kube.get("v1", "PersistentVolumeClaim", manifests.PVC, ns_name)
    sts = await kube.get("apps/v1", "StatefulSet", manifests.SANDBOX, ns_name)
    proxy = (
        await kube.get("apps/v1", "Deployment", egress.PROXY, ns_name)
        if tenant.spec.sandbox.egress_hosts
        else None
    )
    quota = await kube.get("v1", "ResourceQuota", "tenant-quota", ns_name)
    missing = tuple(
        [
            s
            for s in tenant.spec.sandbox.secrets
            if await kube.get("v1", "Secret", s, ns_name) is None
        ]
    )
    return status.Observed(
        refused=refused,
        namespace_phase=(ns or {}).get("status", {}).get("phase"),
        quota_counted=_quota_counted(quota),
        pvc_phase=(pvc or {}).get("status", {}).get("phase"),
        sandbox_ready=_ready_replicas(sts),
        sandbox_wanted=tenant.spec.sandbox.replicas,
        proxy_ready=(
            None
            if not tenant.spec.sandbox.egress_hosts
            else bool(((proxy or {}).get("status") or {}).get("availableReplicas"))
        ),
        error=error,
        missing_secrets=missing,
        namespace=ns_name,
    )


def _ready_replicas(sts: dict[str, Any] | None) -> int:
    """Its ready pods, once the StatefulSet controller has seen its newest spec (just
    scaled down to zero and up again, its status may still count the old pod)."""
    if sts is None:
        return 0
    st, generation = sts.get("status") or {}, sts["metadata"].get("generation") or 0
    if (st.get("observedGeneration") or generation) < generation:
        return 0
    return int(st.get("readyReplicas") or 0)


def _quota_counted(quota: dict[str, Any] | None) -> bool:
    """The quota controller tracks every resource in spec.hard (admission would fail else)."""
    if quota is None:
        return False
    hard = set((quota.get("spec") or {}).get("hard") or {})
    used = set(((quota.get("status") or {}).get("used")) or {})
    return bool(hard) and hard <= used


async def _write_status(
    recorder: EventRecorder,
    persist: Persist,
    body: dict[str, Any],
    observed: status.Observed,
    usage: dict[str, int],
) -> bool:
    """Patch status only when it changed, so the status write does not loop; False when
    it changed and was not written."""
    meta, old = body["metadata"], body.get("status") or {}
    phase, conds = status.conditions(observed)
    new = {
        "namespace": namespace_of(meta["name"]),
        "phase": phase,
        "conditions": conditions.merge(
            old.get("conditions"), conds, generation=meta.get("generation")
        ),
        "usage": {**(old.get("usage") or {}), **usage},
        "observedGeneration": meta.get("generation"),
    }
    if {k: old.get(k) for k in new} == new:
        return True
    fence = namespace_of(meta["name"])
    if await persist.status(TENANT, body, unchanged_spec(body, new), fence=fence) is None:
        return False
    if old.get("phase") != phase:
        ready = next(c for c in conds if c.type == ConditionType.READY)
        await recorder.post(
            body, "Warning" if phase == "Degraded" else "Normal", ready.reason, ready.message
        )
        log.info("tenant phase", tenant=meta["name"], phase=phase, reason=ready.reason)
    return True


async def tenant_deleted(
    kube: KubeApi, recorder: EventRecorder, name: str, body: dict[str, Any]
) -> None:
    """Finalizer: terminate running instances, then remove the namespace and everything in it."""
    ns_name = namespace_of(name)
    ns = await kube.get("v1", "Namespace", ns_name)
    if ns is None or (ns["metadata"].get("labels") or {}).get(TENANT_LABEL) != name:
        return  # never ours (a conflict): nothing to remove
    running = [
        i
        for i in await kube.list(API_VERSION, INSTANCE, ns_name)
        if (i.get("status") or {}).get("phase") not in FINISHED
    ]
    for inst in running:
        if not inst["spec"].get("terminate"):
            await kube.patch(
                API_VERSION,
                INSTANCE,
                inst["metadata"]["name"],
                ns_name,
                {"spec": {"terminate": True}},
            )
    deleted_at = parse_time(body["metadata"]["deletionTimestamp"])
    if running and dt.datetime.now(dt.UTC) - deleted_at < TERMINATION_GRACE:
        raise kopf.TemporaryError(f"waiting for {len(running)} instance(s) to terminate", delay=2)
    if running:
        await recorder.post(
            body,
            "Warning",
            "TerminationTimeout",
            f"{len(running)} instance(s) did not terminate within "
            f"{TERMINATION_GRACE.seconds}s; deleting the namespace anyway",
        )
    await kube.delete("v1", "Namespace", ns_name)
    log.info("tenant removed", tenant=name, namespace=ns_name)
