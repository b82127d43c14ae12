"""Idle sandboxes scale to zero and come back (issue 37): the tenant controller against the
in-memory API, the instance controller with an in-process sandbox, and the sandbox lookup
that stands between them."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tenantflow.api.tenant import Tenant
from tenantflow.controllers.instances.failures import SANDBOX_WAIT_RECHECK
from tenantflow.controllers.persist import Persist
from tenantflow.controllers.sandboxes import Sandboxes
from tenantflow.controllers.tenant import Idle, TenantController, reconcile
from tenantflow.durations import format_time, parse_time
from tenantflow.kube.events import EventRecorder
from tenantflow.sandbox.client.transport import SandboxUnavailable
from tenantflow.tenancy import egress, idle, manifests
from tenantflow.tenancy.idle import WAITING_FOR_SANDBOX, SandboxDemand, State
from tenantflow.vocabulary import API_VERSION, SCHEDULE, TENANT, Phase
from tenantflow_dev.fake_kube import FakeKube
from tests.unit.controllers.harness import NS, Harness

pytestmark = pytest.mark.unit

SETTINGS = manifests.OperatorSettings(sandbox_image="reg/sandbox:1", idle_after=600.0)

COUNTED = """
async def run(event, step, env):
    env.db.execute('CREATE TABLE IF NOT EXISTS ran (step TEXT)')
    def body(name):
        env.db.execute('INSERT INTO ran VALUES (?)', (name,))
        return name
    await step.do('a', lambda: body('a'))
    await step.do('b', lambda: body('b'))
    return env.db.query('SELECT count(*) AS n FROM ran')[0]['n']
"""

SLEEPER = """
async def run(event, step, env):
    await step.sleep('nap', '1h')
    return 'rested'
"""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def put_tenant(kube: FakeKube, **sandbox: Any) -> None:
    body = Tenant.model_validate(
        {"metadata": {"name": "acme", "uid": "u-1"}, "spec": {"sandbox": sandbox}}
    ).model_dump(by_alias=True, exclude_none=True)
    kube.put({**body, "apiVersion": API_VERSION, "kind": TENANT})


def healthy(kube: FakeKube, ready: int = 1) -> None:
    """What the cluster's controllers would report: namespace Active, quota counted, PVC
    Bound, and `ready` sandbox pods."""

    def status(api: str, kind: str, name: str, ns: str | None, st: dict[str, Any]) -> None:
        obj = kube.objects[(api, kind, ns, name)]
        obj["status"] = st

    status("v1", "Namespace", NS, None, {"phase": "Active"})
    quota = kube.objects[("v1", "ResourceQuota", NS, "tenant-quota")]
    status("v1", "ResourceQuota", "tenant-quota", NS, {"used": dict(quota["spec"]["hard"])})
    status("v1", "PersistentVolumeClaim", manifests.PVC, NS, {"phase": "Bound"})
    status("apps/v1", "StatefulSet", manifests.SANDBOX, NS, {"readyReplicas": ready})
    if ("apps/v1", "Deployment", NS, egress.PROXY) in kube.objects:
        status("apps/v1", "Deployment", egress.PROXY, NS, {"availableReplicas": ready})


async def tenant_reconcile(kube: FakeKube, hooks: Idle) -> Any:
    return await reconcile(
        kube, EventRecorder(kube), Persist(kube), SETTINGS, lambda _: {}, "acme", hooks
    )


def replicas(kube: FakeKube, kind: str = "StatefulSet", name: str = manifests.SANDBOX) -> int:
    obj = kube.read("apps/v1", kind, name, NS)
    assert obj is not None
    return int(obj["spec"]["replicas"])


def tenant_status(kube: FakeKube) -> tuple[str, dict[str, dict[str, Any]]]:
    st = kube.read(API_VERSION, TENANT, "acme")["status"]
    return st["phase"], {c["type"]: c for c in st["conditions"]}


async def idle_tenant(**sandbox: Any) -> tuple[FakeKube, Idle]:
    """A Ready tenant whose sandbox was last used long ago (not reconciled since)."""
    kube, hooks = FakeKube(), Idle(SandboxDemand())
    put_tenant(kube, **sandbox)
    await tenant_reconcile(kube, hooks)
    healthy(kube)
    await tenant_reconcile(kube, hooks)
    assert tenant_status(kube)[0] == "Ready" and replicas(kube) == 1
    hooks.demand.used("acme", now() - dt.timedelta(hours=1))
    return kube, hooks


async def test_an_idle_tenant_scales_to_zero_and_stays_ready() -> None:
    kube, hooks = await idle_tenant(egressHosts=[{"host": "example.com"}])
    done = await tenant_reconcile(kube, hooks)
    assert replicas(kube) == 0, "its sandbox"
    assert replicas(kube, "Deployment", egress.PROXY) == 0, "and its egress proxy"
    assert kube.read("v1", "PersistentVolumeClaim", manifests.PVC, NS), "its data stays"
    healthy(kube, ready=0)
    await tenant_reconcile(kube, hooks)
    phase, conds = tenant_status(kube)
    assert phase == "Ready" and conds["Ready"]["status"] == "True", "serving on demand"
    assert "scaled to zero" in conds["Ready"]["message"]
    scaled = conds["SandboxScaledToZero"]
    assert (scaled["status"], scaled["reason"]) == ("True", idle.IDLE)
    assert conds["SandboxReady"]["reason"] == "ScaledToZero"
    assert done.look_again is None, "no wake-up known: nothing to look at with time"
    assert hooks.demand.state("acme") is State.ASLEEP
    assert not hooks.demand.available("acme")


async def test_a_recently_used_sandbox_stays_up_until_idle_after() -> None:
    kube, hooks = await idle_tenant(idleAfter="20s")
    hooks.demand.used("acme", now() - dt.timedelta(seconds=5))
    done = await tenant_reconcile(kube, hooks)
    assert replicas(kube) == 1
    assert done.look_again is not None
    assert 10 < (done.look_again - now()).total_seconds() <= 15, "its spec.sandbox.idleAfter"


async def test_always_on_never_scales_to_zero() -> None:
    kube, hooks = await idle_tenant(alwaysOn=True)
    await tenant_reconcile(kube, hooks)
    assert replicas(kube) == 1
    reason = tenant_status(kube)[1]["SandboxScaledToZero"]["reason"]
    assert reason == idle.ALWAYS_ON


async def test_a_call_in_flight_keeps_the_sandbox_up() -> None:
    kube, hooks = await idle_tenant()
    hooks.busy = lambda tenant: 1  # a 15-minute step is running in it
    await tenant_reconcile(kube, hooks)
    assert replicas(kube) == 1


async def test_an_instances_wake_up_brings_the_sandbox_back_ahead_by_its_cold_start(
    tmp_path: Path,
) -> None:
    h = Harness.new(tmp_path)
    await h.define("sleeper", SLEEPER)
    key = h.start("nap", "sleeper")
    await h.drive(key)
    h.controller.on_event("MODIFIED", h.watched("nap"))  # the echo: its wake-up is booked
    wake = parse_time(h.status("nap")["nextWakeAt"])
    assert h.controller.book.next_wake("acme", now()) == wake

    hooks = Idle(SandboxDemand(), next_wake=h.controller.book.next_wake)
    kube = h.kube
    put_tenant(kube)
    await tenant_reconcile(kube, hooks)
    healthy(kube)
    hooks.demand.used("acme", now() - dt.timedelta(hours=1))
    done = await tenant_reconcile(kube, hooks)
    assert replicas(kube) == 0, "an hour to go: asleep"
    healthy(kube, ready=0)
    lead = dt.timedelta(seconds=idle.DEFAULT_COLD_START + idle.WARM_MARGIN)
    assert done.look_again == wake - lead, "looked at again a cold start before the wake-up"

    # the cold start measured at 20 s: the lead grows with it
    hooks.demand.tenants["acme"].cold_starts.append(20.0)
    done = await tenant_reconcile(kube, hooks)
    assert done.look_again == wake - dt.timedelta(seconds=20 + idle.WARM_MARGIN)

    # now the wake-up is within the lead: the sandbox starts before it is due
    h.controller.book.wakes_at(key, "acme", now() + dt.timedelta(seconds=15))
    await tenant_reconcile(kube, hooks)
    assert replicas(kube) == 1
    assert hooks.demand.state("acme") is State.WAKING
    scaled = tenant_status(kube)[1]["SandboxScaledToZero"]
    assert (scaled["status"], scaled["reason"]) == ("False", WAITING_FOR_SANDBOX)
    # its pod becomes ready: the start is measured
    healthy(kube)
    await tenant_reconcile(kube, hooks)
    assert hooks.demand.state("acme") is State.AWAKE
    assert ("Normal", "SandboxStarted") in h.events()


async def test_a_schedules_next_run_wakes_the_sandbox_ahead_too() -> None:
    kube, hooks = await idle_tenant()
    soon = now() + dt.timedelta(seconds=5)
    kube.put(
        {
            "apiVersion": API_VERSION,
            "kind": SCHEDULE,
            "metadata": {"name": "nightly", "namespace": NS},
            "spec": {"schedule": "* * * * *", "workflowRef": {"name": "x"}},
            "status": {"nextRunTimes": [format_time(soon)]},
        }
    )
    await tenant_reconcile(kube, hooks)
    assert replicas(kube) == 1


async def test_an_instance_that_finds_its_sandbox_not_ready_asks_to_be_driven_when_it_is(
    tmp_path: Path,
) -> None:
    """A new tenant's first pod, a restarted one: the call fails (and backs off as any
    failure does) and the instance is also registered as waiting for the sandbox, so the
    tenant controller drives it as soon as the runner answers."""
    h = Harness.new(tmp_path)
    await h.define("counted", COUNTED)
    key = h.start("one", "counted")
    h.sandbox.failures = [SandboxUnavailable("SandboxNotReady", "no ready sandbox pod yet")]
    await h.drive(key)
    assert h.sandbox.waiters == [key]
    assert h.controller.failures.failures[key] == 1, "a failure still: it backs off"


async def test_an_instance_needing_a_sandbox_at_zero_waits_visibly_with_no_strike(
    tmp_path: Path,
) -> None:
    h = Harness.new(tmp_path)
    await h.define("counted", COUNTED)
    key = h.start("one", "counted")
    lost = SandboxUnavailable("SandboxWorkerLost", "the worker died")
    waiting = SandboxUnavailable(WAITING_FOR_SANDBOX, "the sandbox is starting")
    h.sandbox.failures = [lost, lost, waiting, waiting, waiting, waiting]
    await h.drive(key, times=6)
    st = h.status("one")
    reachable = next(c for c in st["conditions"] if c["type"] == "SandboxReachable")
    assert (reachable["status"], reachable["reason"]) == ("False", WAITING_FOR_SANDBOX)
    assert st["phase"] == Phase.RUNNING, "waiting is not an error"
    assert ("Warning", WAITING_FOR_SANDBOX) not in h.events()
    assert h.sandbox.waiters == [key] * 4, "it asked to be driven once the sandbox is up"
    due = h.controller.queue.due_at(key)
    assert due is not None and (due - now()).total_seconds() <= SANDBOX_WAIT_RECHECK
    assert h.controller.failures.worker_losses[key] == 2, "the waits are no strike"
    await h.drive(key)  # the sandbox is up: it goes on, each step once
    st = h.status("one")
    assert st["phase"] == Phase.COMPLETE and st["output"] == 2
    assert not any(c["type"] == "SandboxReachable" for c in st.get("conditions") or [])


async def test_the_sandbox_lookup_starts_a_sandbox_at_zero_and_says_wait() -> None:
    kube, woken = FakeKube(), []
    demand = SandboxDemand()
    demand.applied("acme", False, False, now())
    lookups = Sandboxes(kube, mode="cluster", demand=demand, wake=woken.append)
    with pytest.raises(SandboxUnavailable) as caught:
        await lookups.endpoint("acme")
    assert caught.value.reason == WAITING_FOR_SANDBOX
    assert woken == ["acme"], "the tenant controller is asked to start it"
    last = demand.tenants["acme"].last_used
    assert last is not None and (now() - last).total_seconds() < 5, "needed now"


async def test_a_sandbox_up_from_zero_drives_the_instances_that_waited() -> None:
    kube, hooks = await idle_tenant()
    driven: list[str] = []
    hooks.woken = driven.extend
    await tenant_reconcile(kube, hooks)
    assert replicas(kube) == 0
    hooks.demand.used("acme", now())  # an instance needs it
    hooks.demand.wait("acme", f"{NS}/one")
    healthy(kube, ready=0)
    await tenant_reconcile(kube, hooks)
    assert replicas(kube) == 1 and driven == []
    phase, conds = tenant_status(kube)
    assert phase == "Ready", "starting from zero is no outage"
    assert conds["SandboxReady"]["reason"] == WAITING_FOR_SANDBOX
    assert "1 waiting instance" in conds["SandboxReady"]["message"]
    healthy(kube, ready=1)
    await tenant_reconcile(kube, hooks)
    assert driven == [f"{NS}/one"]
    assert hooks.demand.available("acme")


async def test_a_waking_sandbox_whose_runner_answers_drives_its_waiters_before_the_probe() -> None:
    """Issue 37.3's cut: the operator asks the new runner itself; the instances that waited
    are driven as soon as it answers, before the kubelet's readiness probe (1 s period),
    the StatefulSet's status and the EndpointSlice say so."""
    kube, hooks = await idle_tenant()
    driven: list[str] = []
    answers = [False, True]
    asked: list[str] = []

    async def runner_answers(tenant: str) -> bool:
        asked.append(tenant)
        return answers.pop(0) if answers else True

    hooks.woken, hooks.runner_answers = driven.extend, runner_answers
    await tenant_reconcile(kube, hooks)  # idle: to zero
    hooks.demand.used("acme", now())
    hooks.demand.wait("acme", f"{NS}/one")
    healthy(kube, ready=0)
    since = len(kube.calls)
    await tenant_reconcile(kube, hooks)  # scaled up: waking (its pod not even there yet)
    assert asked == [] and hooks.demand.state("acme") is State.WAKING
    applied = [c for c in kube.calls[since:] if c[0] == "apply"]
    assert applied[0] == ("apply", "StatefulSet", manifests.SANDBOX), "scaled up first"
    assert applied.count(applied[0]) == 1, "and once"
    await tenant_reconcile(kube, hooks)  # the runner does not answer yet
    assert driven == [] and asked == ["acme"]
    await tenant_reconcile(kube, hooks)  # it answers: ready, though no pod is Ready yet
    assert driven == [f"{NS}/one"] and hooks.demand.available("acme")


async def test_the_tenant_controller_asks_a_waking_runner_until_it_answers() -> None:
    kube, hooks = await idle_tenant()
    answers = [False, False, True]

    async def runner_answers(tenant: str) -> bool:
        return answers.pop(0) if answers else True

    driven: list[str] = []
    hooks.runner_answers, hooks.woken = runner_answers, driven.extend
    controller = TenantController(kube, SETTINGS, usage=lambda _: {}, idle=hooks)  # type: ignore[arg-type]
    controller.queue.request("acme")
    await controller.queue.drain()  # idle: to zero
    hooks.demand.used("acme", now())
    hooks.demand.wait("acme", f"{NS}/one")
    healthy(kube, ready=0)
    controller.queue.request("acme")
    await controller.queue.drain()  # waking: its runner asked every WAKE_PROBE_EVERY
    prober = controller.probing["acme"]
    await asyncio.wait_for(prober, 5)
    assert answers == [] and hooks.demand.available("acme")
    assert driven == [f"{NS}/one"], "driven as the runner answered, not after a reconcile"
    await controller.queue.drain()  # (the reconcile it asked for: the tenant's status)
    assert driven == [f"{NS}/one"], "driven once"


async def test_the_sandbox_lookup_finds_a_runner_that_answers_at_its_pods_address(
    unused_tcp_port: int,
) -> None:
    """`runner_answers` asks `/healthz` at the sandbox pods' addresses (not a pod going
    away, not one without an address); the address that answered is the next endpoint,
    though no EndpointSlice lists it yet. A runner whose network is not fenced (503) is
    not ready."""
    status = {"code": 503}

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": status["code"] == 200}, status=status["code"])

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    kube = FakeKube()
    key = base64.b64encode(b"k" * 32).decode()
    secret = {"name": manifests.HMAC_SECRET, "namespace": NS}
    kube.put({"apiVersion": "v1", "kind": "Secret", "metadata": secret, "data": {"key": key}})
    labels = {"app.kubernetes.io/name": manifests.SANDBOX}
    for name, ip, gone in (("old", "127.0.0.2", True), ("new", "127.0.0.1", False)):
        meta: dict[str, Any] = {"name": name, "namespace": NS, "labels": labels}
        if gone:
            meta["deletionTimestamp"] = format_time(now())
        status_of = {"phase": "Running", "podIP": ip}
        kube.put({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": status_of})
    lookups = Sandboxes(kube, mode="cluster")
    lookups.port = unused_tcp_port
    try:
        assert not await lookups.runner_answers("acme"), "503: its network is not fenced yet"
        status["code"] = 200
        assert await lookups.runner_answers("acme")
        ep = await lookups.endpoint("acme")
        assert ep.url == f"http://127.0.0.1:{unused_tcp_port}" and ep.key == b"k" * 32
    finally:
        await lookups.close()
        await runner.cleanup()


async def test_instances_that_found_a_new_pod_not_ready_are_driven_when_its_runner_answers() -> (
    None
):
    """A tenant whose sandbox is up but not ready yet (its first pod, a restart): the
    instances that found it so are driven as soon as its runner answers, not at the end of
    their backoff; no start from zero is reported."""
    kube, hooks = FakeKube(), Idle(SandboxDemand())
    driven: list[str] = []

    async def runner_answers(tenant: str) -> bool:
        return True

    hooks.woken, hooks.runner_answers = driven.extend, runner_answers
    put_tenant(kube)
    await tenant_reconcile(kube, hooks)
    healthy(kube, ready=0)  # its first pod: not ready yet
    hooks.demand.wait("acme", f"{NS}/first")  # (SandboxNotReady: controllers/instances/failures)
    await tenant_reconcile(kube, hooks)
    assert driven == [f"{NS}/first"]
    events = [e for e in kube.objects.values() if e.get("kind") == "Event"]
    assert not any(e.get("reason") == "SandboxStarted" for e in events), "not from zero"


async def test_a_new_tenants_volumes_and_key_exist_before_its_sandbox_pod_is_asked_for() -> None:
    """A StatefulSet applied before its claims makes a pod the scheduler finds
    unschedulable (a claim not found), and looks at again only on its own schedule: with
    a thousand other tenants' claims being bound that was minutes (bench tenants-at-scale)."""
    kube = FakeKube()
    put_tenant(kube)
    await tenant_reconcile(kube, Idle(SandboxDemand()))
    order = [c[1:] for c in kube.calls if c[0] in ("apply", "create")]
    sandbox = order.index(("StatefulSet", manifests.SANDBOX))
    for needed in (("PersistentVolumeClaim", manifests.PVC), ("Secret", manifests.HMAC_SECRET)):
        assert order.index(needed) < sandbox, (needed, order)
