"""The operator process, wired in one place: the composition root.

Every controller is constructed here with what it needs (the API client, the settings,
the caches it shares with another controller, callbacks instead of imports), as
kubebuilder/CloudNativePG reconcilers are constructed with their clients; kopf's handlers
find the wired `Operator` in kopf's `memo`, never in a module global.

kopf stays for Tenants, WorkflowDefinitions and WorkflowSchedules: it brings their watch
streams and the Tenant finalizer with retries; every event it delivers only requests a
reconcile in that kind's WorkQueue. Replicas share the work by shards
(`controllers/shards.py`): each acts only on the tenants of the shards it holds, so kopf's
own peering is off. WorkflowInstances, 99% of the events, come from the lean reflector
(docs/architecture.md says why). kopf's bookkeeping lives in annotations, not in any
status the CRDs define.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import kopf
from prometheus_client import start_http_server

from tenantflow.controllers.definition import DefinitionController
from tenantflow.controllers.instances import InstanceController, InstanceSettings
from tenantflow.controllers.revision_cache import RevisionCache
from tenantflow.controllers.sandboxes import Sandboxes
from tenantflow.controllers.schedules import ScheduleController
from tenantflow.controllers.shards import Shards, ShardSettings
from tenantflow.controllers.tenant import OWNED, Idle, TenantController
from tenantflow.controllers.work_queue import WorkQueue
from tenantflow.durations import parse_duration
from tenantflow.kube.client import Kube
from tenantflow.kube.events import EventRecorder
from tenantflow.kube.reflector import reflect
from tenantflow.observability.logging import configure, get_logger
from tenantflow.tenancy import manifests, sharding
from tenantflow.tenancy.idle import SandboxDemand
from tenantflow.tenancy.manifests import OperatorSettings
from tenantflow.vocabulary import (
    ANNOTATION_PREFIX,
    API_VERSION,
    DEFINITION,
    GROUP,
    INSTANCE,
    SCHEDULE,
    TENANT,
    TENANT_LABEL,
    VERSION,
    namespace_of,
    object_key,
)

log = get_logger("tenantflow.operator")


class _Namespaced(Protocol):
    def on_event(self, kind: str, namespace: str, name: str) -> None: ...


@dataclass
class Operator:
    """Everything one operator process runs, built once at start-up."""

    kube: Kube
    settings: OperatorSettings
    instances: InstanceController
    tenants: TenantController
    definitions: DefinitionController
    schedules: ScheduleController
    shards: Shards
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    watches: dict[int, asyncio.Task[None]] = field(default_factory=dict)  # by shard

    @classmethod
    def build(
        cls,
        kube: Kube,
        settings: OperatorSettings,
        instance_settings: InstanceSettings,
        shard_settings: ShardSettings,
    ) -> Operator:
        revisions = RevisionCache()
        # the instance and tenant controllers call each other back (usage counts one way,
        # refresh requests the other): late-bound lambdas, no import between them
        # and so do the instance and definition controllers (a finished instance may count
        # for a rollout; a new revision wakes queued instances)
        tenants: TenantController | None = None
        definitions: DefinitionController | None = None
        schedules: ScheduleController | None = None
        op: Operator | None = None
        recorder = EventRecorder(kube)  # one Normal-Event budget per namespace, shared
        shards = Shards(
            kube,
            shard_settings,
            gained=lambda gained: op.gained(gained) if op else None,
            lost=lambda lost: op.lost(lost) if op else None,
        )
        # when each tenant's sandbox was last needed and whether it is at zero: the
        # sandbox lookups (instance side) and the tenant controller (which scales it) share it
        demand = SandboxDemand()
        sandboxes = Sandboxes(
            kube,
            demand=demand,
            wake=lambda tenant: tenants.queue.request(tenant) if tenants else None,
        )
        instances = InstanceController(
            kube,
            sandboxes,
            revisions,
            usage_changed=lambda tenant: tenants.usage_changed(tenant) if tenants else None,
            settings=instance_settings,
            finished=lambda ns, wf: definitions.instance_finished(ns, wf) if definitions else None,
            run_finished=lambda ns, s: schedules.run_finished(ns, s) if schedules else None,
            gate=shards.verdict,
            recorder=recorder,
        )
        dispatcher = instances.advancer.dispatcher
        tenants = TenantController(
            kube,
            settings,
            usage=instances.tenant_usage,
            gate=shards.verdict,
            recorder=recorder,
            idle=Idle(
                demand,
                busy=lambda tenant: dispatcher.held[tenant] + dispatcher.waiting(tenant),
                next_wake=instances.book.next_wake,
                woken=lambda keys: instances.queue.request_all(keys),
                runner_answers=sandboxes.runner_answers,
            ),
        )
        definitions = DefinitionController(
            kube,
            revisions,
            wake_instance=instances.queue.request,
            gate=shards.verdict,
            recorder=recorder,
        )
        schedules = ScheduleController(kube, gate=shards.verdict, recorder=recorder)
        op = cls(kube, settings, instances, tenants, definitions, schedules, shards)
        return op

    def _queues(self) -> tuple[WorkQueue[Any], ...]:
        return (
            self.tenants.queue,
            self.definitions.queue,
            self.schedules.queue,
            self.instances.queue,
        )

    def tenant_is_ours(self, tenant: str) -> bool:
        return self.shards.may_act(namespace_of(tenant))

    # ------------------------------------------------------------------ watch events
    # An event is queued when this replica *holds* the namespace's shard, late lease or
    # not: the queue's gate defers the run until the lease is renewed. Asking "may act
    # now" here instead lost events for good: a renewal late by a few seconds on a loaded
    # machine, caught up before the next round, reports no shard lost or gained, so no
    # adoption ever relists what was ignored meanwhile (a new Tenant stayed without a
    # status). An event for another replica's shard is dropped: that replica adopts it.
    def _holds(self, namespace: str) -> bool:
        return self.shards.holds(namespace)

    def tenant_event(self, kind: str, tenant: str) -> None:
        """A Tenant's watch event, or one of an object it owns (drift repair)."""
        if kind != "DELETED" and self._holds(namespace_of(tenant)):
            self.tenants.queue.request(tenant)

    def namespaced_event(
        self, controller: _Namespaced, kind: str, namespace: str, name: str
    ) -> None:
        """A definition's or a schedule's watch event, to its controller."""
        if self._holds(namespace):
            controller.on_event(kind, namespace, name)

    def gained(self, shards: set[int]) -> None:
        """Shards this replica may act on now: adopt their tenants, definitions and
        instances (their watch events were ignored while another replica held them), and
        watch their instances from now on (one watch per shard, by its label)."""
        task = asyncio.create_task(self._adopt(self._in_shards(shards)))
        self.tasks.append(task)
        task.add_done_callback(lambda t: self.tasks.remove(t) if t in self.tasks else None)
        for n in shards:
            old = self.watches.pop(n, None)
            if old is not None:
                old.cancel()
            self.watches[n] = self._reflect(sharding.selector(n), self._in_shards({n}))

    def lost(self, shards: set[int]) -> None:
        """Shards this replica must no longer act on: stop watching their instances, drop
        their keys from every queue (a usage refresh, a schedule's next time, a wake-up
        queued for them must not run here) and forget their state. A run already going
        is fenced at its status write; the shards, if gained again, are adopted anew."""
        for n in shards:
            watch = self.watches.pop(n, None)
            if watch is not None:
                watch.cancel()
        gone = self._in_shards(shards)
        dropped = sum(queue.drop(gone) for queue in self._queues())
        self.instances.release(gone)
        log.info("shards lost", shards=sorted(shards), keys_dropped=dropped)

    def _in_shards(self, shards: set[int]) -> Callable[[str], bool]:
        """Whether a namespace belongs to one of `shards`."""
        return lambda namespace: self.shards.shard(namespace) in shards

    def _reflect(self, selector: str, covers: Callable[[str], bool]) -> asyncio.Task[None]:
        """A list-then-watch of the instances `selector` selects."""
        return asyncio.create_task(
            reflect(
                self.kube,
                API_VERSION,
                INSTANCE,
                self.instances.on_event,
                lambda keys: self.instances.relisted(keys, covers),
                label_selector=selector,
            )
        )

    async def _adopt(self, ours: Callable[[str], bool]) -> None:
        """Until it succeeds (an API error must not leave a shard's instances undriven)."""
        delay = 0.5
        while True:
            try:
                await self._adopt_once(ours)
                return
            except Exception:
                log.exception("adopting gained shards failed; retrying", retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _adopt_once(self, ours: Callable[[str], bool]) -> None:
        await self.instances.adopt(ours)
        for tenant in await self.kube.list(API_VERSION, TENANT):
            if ours(namespace_of(tenant["metadata"]["name"])):
                self.tenants.queue.request(tenant["metadata"]["name"])
        for kind, queue in ((DEFINITION, self.definitions.queue), (SCHEDULE, self.schedules.queue)):
            for obj in await self.kube.list(API_VERSION, kind):
                if ours(obj["metadata"]["namespace"]):
                    queue.request(object_key(obj["metadata"]["namespace"], obj["metadata"]["name"]))

    async def start(self) -> None:
        self.tasks.append(asyncio.create_task(self.shards.run()))
        for queue in self._queues():
            self.tasks.append(asyncio.create_task(queue.run_later_loop()))
        # instances no admission policy labelled with their shard (made before the policy,
        # or on a cluster without it): one watch for all of them, sorted out on arrival
        self.tasks.append(self._reflect(sharding.UNLABELLED, lambda namespace: False))

    async def stop(self) -> None:
        for task in [*self.tasks, *self.watches.values()]:
            task.cancel()
        await self.shards.stop()  # hand the shards over at once
        for queue in self._queues():
            await queue.drain()
        await self.instances.transport.close()
        await self.instances.sandboxes.close()
        await self.kube.close()


def _listed(value: str) -> tuple[str, ...]:
    """A comma-separated setting."""
    return tuple(p for p in value.replace(" ", "").split(",") if p)


def _idle_after(value: str) -> float | None:
    """The chart's sandbox.idleAfter: a duration (10m), or empty/0 for always on."""
    value = value.strip()
    if value in ("", "0"):
        return None
    return parse_duration(value, field="TENANTFLOW_SANDBOX_IDLE_AFTER") or None


def settings_from_env() -> tuple[OperatorSettings, InstanceSettings, ShardSettings]:
    """The process's settings, read once at the edge (the chart sets these variables)."""
    defaults, instance, shards = OperatorSettings(), InstanceSettings(), ShardSettings()
    env = os.environ.get
    operator = OperatorSettings(
        namespace=env("TENANTFLOW_NAMESPACE", defaults.namespace),
        sandbox_image=env("TENANTFLOW_SANDBOX_IMAGE", defaults.sandbox_image),
        isolation_canary=env("TENANTFLOW_ISOLATION_CANARY", defaults.isolation_canary),
        allowed_images=_listed(env("TENANTFLOW_ALLOWED_SANDBOX_IMAGES", "")),
        protected_cidrs=_listed(env("TENANTFLOW_PROTECTED_CIDRS", "")),
        shards=int(env("TENANTFLOW_SHARDS", defaults.shards)),
        idle_after=_idle_after(env("TENANTFLOW_SANDBOX_IDLE_AFTER", "")),
    )
    return (
        operator,
        InstanceSettings(
            finished_ttl=float(env("TENANTFLOW_FINISHED_TTL_SECONDS", instance.finished_ttl)),
            drive_workers=int(env("TENANTFLOW_DRIVE_WORKERS", instance.drive_workers)),
            dispatch_slots=int(env("TENANTFLOW_DISPATCH_SLOTS", instance.dispatch_slots)),
        ),
        ShardSettings(
            identity=env("TENANTFLOW_IDENTITY") or shards.identity,
            namespace=env("TENANTFLOW_LEASE_NAMESPACE", shards.namespace),
            shards=operator.shards,  # one count: the namespaces' labels and the Leases
            lease=float(env("TENANTFLOW_LEASE_SECONDS", shards.lease)),
            renew=float(env("TENANTFLOW_LEASE_RENEW_SECONDS", shards.renew)),
        ),
    )


def _operator(memo: Any) -> Operator:
    op: Operator = memo.operator
    return op


# ---------------------------------------------------------------------- kopf handlers
@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the service account; elsewhere: $KUBECONFIG (the dev cluster's, say).

    kopf's own service-account login names the API server `kubernetes.default.svc`, which
    needs cluster DNS; like client-go's in-cluster config, use the address the kubelet
    hands every pod (KUBERNETES_SERVICE_HOST/PORT), so the operator runs without DNS."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if not host:
        return kopf.login_with_kubeconfig(**kwargs)
    info = kopf.login_with_service_account(**kwargs)
    if info is None:
        return None
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    host = f"[{host}]" if ":" in host else host
    return dataclasses.replace(info, server=f"https://{host}:{port}")


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf's bookkeeping in annotations (never in a status the CRDs define), no per-log Events
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    # Tenant/definition events handed on at once (no 0.1 s batch window): a definition's
    # event is what invalidates the cached active revision after a rollback
    settings.batching.batch_window = 0.01
    settings.batching.idle_timeout = 1.0
    kube = await Kube.connect(os.environ.get("KUBECONFIG"), connections=32, proxy_from_env=False)
    operator_settings, instance_settings, shard_settings = settings_from_env()
    memo.operator = Operator.build(kube, operator_settings, instance_settings, shard_settings)
    await memo.operator.start()
    log.info("operator started", namespace=operator_settings.namespace)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await _operator(memo).stop()


@kopf.on.event(GROUP, VERSION, "tenants")
async def tenant_event(type: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    _operator(memo).tenant_event(type, name)


@kopf.on.delete(GROUP, VERSION, "tenants")
async def tenant_deleted(name: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    op = _operator(memo)
    if not op.tenant_is_ours(name):  # the replica holding its shard removes the finalizer
        raise kopf.TemporaryError(f"tenant {name} is another replica's shard", delay=5)
    await op.tenants.deleted(name, dict(body))


def _owned_handler(group: str, version: str, plural: str) -> None:
    """Drift repair: a change to an object a tenant owns reconciles that tenant."""
    selector: dict[str, Any] = {TENANT_LABEL: kopf.PRESENT, **manifests.MANAGED_BY}

    @kopf.on.event(group, version, plural, id=f"owned-{plural}", labels=selector)
    async def owned_event(labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
        _operator(memo).tenant_event("MODIFIED", labels[TENANT_LABEL])


for _group, _version, _plural in OWNED:
    _owned_handler(_group, _version, _plural)


def _namespaced_handler(plural: str, controller: Callable[[Operator], _Namespaced]) -> None:
    """A namespaced kind's events, to its controller, in the shards this replica holds."""

    @kopf.on.event(GROUP, VERSION, plural, id=f"{plural}-event")
    async def event(type: str, namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
        if namespace:
            op = _operator(memo)
            op.namespaced_event(controller(op), type, namespace, name)


_namespaced_handler("workflowdefinitions", lambda op: op.definitions)
_namespaced_handler("workflowschedules", lambda op: op.schedules)


def run(*, metrics_port: int, liveness_port: int) -> None:
    """Run until SIGINT/SIGTERM. Metrics at :metrics_port/metrics, liveness at /healthz.
    kopf's peering is off (standalone): the shards' Leases decide who acts on what."""
    configure()
    if metrics_port:
        start_http_server(metrics_port)
    kopf.run(
        clusterwide=True,
        standalone=True,
        liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None,
    )
