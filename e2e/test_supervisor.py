"""The supervisor on a real cluster: caps hold, queues drain, rates hold, neighbours are fair."""

from __future__ import annotations

import time
from typing import Any

import yaml

from conftest import wait_for
from e2e.conftest import GROUP, VERSION, Tenant

ACTIVE = {"Running", "Waiting", "Paused"}
NAP = """
async def run(event, step):
    await step.sleep("nap", event["payload"]["seconds"])
    return event["payload"]["num"]
"""


def start_many(
    tenant: Tenant, kubectl: Any, definition: str, count: int, seconds: float, prefix: str
) -> list[str]:
    names = [f"{prefix}-{n:04}" for n in range(count)]
    docs = [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkflowInstance",
            "metadata": {"name": name},
            "spec": {"workflowRef": {"name": definition}, "params": {"num": n, "seconds": seconds}},
        }
        for n, name in enumerate(names)
    ]
    kubectl("apply", "-n", tenant.ns, "-f", "-", input=yaml.safe_dump_all(docs))
    return names


def phases(tenant: Tenant) -> dict[str, dict[str, Any]]:
    items = tenant.custom.list_namespaced_custom_object(
        GROUP, VERSION, tenant.ns, "workflowinstances"
    )["items"]
    return {i["metadata"]["name"]: i.get("status") or {} for i in items}


def test_the_concurrency_cap_holds_and_the_queue_drains(tenant_factory: Any, kubectl: Any) -> None:
    tenant = tenant_factory(maxConcurrentInstances=3, maxInstanceStartsPerSecond=50)
    tenant.define("nap", NAP)
    tenant.wait_revision("nap", 1)
    names = start_many(tenant, kubectl, "nap", 15, 1, "cap")
    peak, saw_queued = 0, False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        current = phases(tenant)
        active = sum(st.get("phase") in ACTIVE for st in current.values())
        peak = max(peak, active)
        saw_queued |= any(st.get("phase") == "Queued" for st in current.values())
        assert active <= 3, {n: (st.get("phase"), st.get("startedAt")) for n, st in current.items()}
        if all(current.get(n, {}).get("phase") == "Complete" for n in names):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the queue did not drain")
    assert peak == 3 and saw_queued
    queued = next(iter(phases(tenant).values()))
    assert queued["phase"] == "Complete"


def test_a_noisy_neighbour_does_not_starve_another_tenant(
    tenant_factory: Any, kubectl: Any
) -> None:
    noisy = tenant_factory(maxConcurrentInstances=5, maxInstanceStartsPerSecond=50)
    quiet = tenant_factory(maxConcurrentInstances=5)
    for t in (noisy, quiet):
        t.define("nap", NAP)
        t.wait_revision("nap", 1)
    flood = start_many(noisy, kubectl, "nap", 60, 1, "flood")
    wait_for(
        lambda: sum(st.get("phase") == "Queued" for st in phases(noisy).values()) > 20,
        "the flood to queue up",
        60,
    )
    started = time.monotonic()
    mine = quiet.start("nap", {"num": 1, "seconds": 1})
    quiet.wait_phase(mine, "Complete", timeout=30)
    latency = time.monotonic() - started
    backlog = [n for n, st in phases(noisy).items() if st.get("phase") != "Complete"]
    assert backlog, "the quiet tenant finished only after the flood drained"
    assert latency < 15, f"the quiet tenant's 1 s instance took {latency:.1f} s"
    assert len(flood) == 60


def test_the_start_rate_stays_within_the_bucket(tenant_factory: Any, kubectl: Any) -> None:
    tenant = tenant_factory(maxConcurrentInstances=100, maxInstanceStartsPerSecond=2)
    tenant.define("nap", NAP)
    tenant.wait_revision("nap", 1)
    names = start_many(tenant, kubectl, "nap", 12, 0, "rate")
    wait_for(
        lambda: all(phases(tenant).get(n, {}).get("phase") == "Complete" for n in names),
        "all rate-limited instances to complete",
        90,
    )
    starts = sorted(
        time.mktime(time.strptime(st["startedAt"][:19], "%Y-%m-%dT%H:%M:%S"))
        for st in phases(tenant).values()
    )
    span = starts[-1] - starts[0]
    assert span >= (12 - 4) / 2 - 1, f"12 starts in {span}s exceed 2/s with burst 4"
    for i, t0 in enumerate(starts):
        in_window = sum(1 for t in starts[i:] if t - t0 < 1)
        assert in_window <= 4 + 2 + 1, "more starts in one second than burst + rate"
