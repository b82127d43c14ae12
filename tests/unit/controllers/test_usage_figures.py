"""Figures that must not go stale: the tenant's store size reaches Tenant.status.usage,
startsLastMinute decays with time alone, and status.waitingFor names only the wait of now."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from tenantflow.controllers.tenant import USAGE_INTERVAL, TenantController
from tenantflow.sandbox.client.transport import HttpTransport
from tenantflow.supervisor.usage import STORAGE_BYTES
from tenantflow.tenancy.manifests import OperatorSettings
from tenantflow.vocabulary import API_VERSION, INSTANCE, TENANT, Phase
from tenantflow_dev.fake_kube import FakeKube
from tests.unit.controllers.harness import NS, Harness, InProcessSandbox

STORE_BYTES = 53_248

EVENT_THEN_SLEEP = """
async def run(event, step, env):
    await step.wait_for_event('approval', type='approved', timeout='1h')
    await step.sleep('cool-down', '10m')
    return 'done'
"""


class MeasuringSandbox:
    """The in-process sandbox, answering with its store's size as the runner does."""

    def __init__(self, inner: InProcessSandbox) -> None:
        self.inner = inner

    async def advance(self, endpoint: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {**await self.inner.advance(endpoint, payload), STORAGE_BYTES: STORE_BYTES}


def tenant_status(kube: FakeKube) -> dict[str, Any]:
    body = kube.read(API_VERSION, TENANT, "acme")
    assert body is not None
    return dict(body.get("status") or {})


async def test_the_store_size_the_sandbox_measures_is_the_tenants_storage_bytes(
    tmp_path: Path,
) -> None:
    h = Harness.new(tmp_path)
    h.controller.advancer.transport = cast(HttpTransport, MeasuringSandbox(h.sandbox))
    await h.define("slow", EVENT_THEN_SLEEP)
    await h.drive(h.start("one", "slow"))
    assert "acme" in h.usage_refreshes
    tenants = TenantController(h.kube, OperatorSettings(), usage=h.controller.tenant_usage)
    await tenants.reconcile("acme")
    assert tenant_status(h.kube)["usage"][STORAGE_BYTES] == STORE_BYTES


async def test_starts_last_minute_is_read_again_until_the_window_is_empty() -> None:
    """Nothing else may change after the last start (the instances run for hours): the
    tenant's usage is refreshed again while the window holds starts, so the 6 decays."""
    kube = FakeKube()
    kube.put({"apiVersion": API_VERSION, "kind": TENANT, "metadata": {"name": "acme"}})
    starts = {"startsLastMinute": 6}
    tenants = TenantController(kube, OperatorSettings(), usage=lambda tenant: dict(starts))
    await tenants.reconcile("acme")
    assert tenant_status(kube)["usage"]["startsLastMinute"] == 6
    assert tenants.queue.due_at("acme") is not None, "read again within USAGE_INTERVAL"
    assert USAGE_INTERVAL <= 10
    tenants.queue.cancel_later("acme")
    starts["startsLastMinute"] = 0  # the window emptied
    await tenants.reconcile("acme")
    assert tenant_status(kube)["usage"]["startsLastMinute"] == 0
    assert tenants.queue.due_at("acme") is None, "an empty window needs no refresh"


async def test_waiting_for_names_only_the_current_wait(tmp_path: Path) -> None:
    """The status is a merge patch: a sleep after an event wait must remove eventType
    (and a child wait's child), not keep it beside the sleep."""
    h = Harness.new(tmp_path)
    await h.define("slow", EVENT_THEN_SLEEP)
    key = h.start("one", "slow")
    await h.drive(key)
    waiting = h.status("one")["waitingFor"]
    assert waiting["kind"] == "event" and waiting["eventType"] == "approved"
    await h.kube.patch(
        API_VERSION, INSTANCE, "one", NS, {"spec": {"events": [{"type": "approved"}]}}
    )
    await h.drive(key)
    st = h.status("one")
    assert st["phase"] == Phase.WAITING
    assert st["waitingFor"] == {
        "kind": "sleep",
        "step": "cool-down",
        "until": st["nextWakeAt"],
    }
