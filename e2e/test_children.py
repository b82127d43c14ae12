"""Child workflows on the dev cluster: a parent gathers its children (each a real
instance run by the tenant's sandbox pod) under a cap of one slot, a failed child fails
the parent's step, and ending the parent ends its children (terminate, then delete)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from conftest import wait_deleted, wait_for
from e2e.conftest import GROUP, VERSION, Tenant

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PIPELINE = """
import asyncio
async def run(event, step, env):
    svcs = event["payload"]["svcs"]
    built = await asyncio.gather(*(step.child(f"build-{s}", "build", {"svc": s}) for s in svcs))
    return [b["image"] for b in built]
"""

BUILD = """
async def run(event, step, env):
    svc = event["payload"]["svc"]
    if svc == "slow":
        await step.sleep("wait", "1h")
    if svc == "broken":
        await step.do("compile", lambda: 1 / 0, retries={"limit": 0})
    return {"image": await step.do("push", lambda: svc + ":1")}
"""


@pytest.fixture(scope="module")
def capped(tenant_factory: Any) -> Tenant:
    """One slot for the whole tenant: a parent waiting on children must lend it."""
    t: Tenant = tenant_factory(maxConcurrentInstances=1)
    return t.define_all(pipeline=PIPELINE, build=BUILD)


def children(t: Tenant, parent: str) -> list[dict[str, Any]]:
    uid = t.get(parent)["metadata"]["uid"]
    items: list[dict[str, Any]] = t.custom.list_namespaced_custom_object(
        GROUP, VERSION, t.ns, "workflowinstances", label_selector=f"tenantflow.dev/parent-uid={uid}"
    )["items"]
    return items


def test_a_parent_gathers_its_children_under_a_cap_of_one(capped: Tenant) -> None:
    parent = capped.start("pipeline", {"svcs": ["api", "web"]})
    st = capped.wait_phase(parent, "Complete", "Errored", timeout=120)
    assert st["phase"] == "Complete", st
    assert st["output"] == ["api:1", "web:1"]
    kids = children(capped, parent)
    assert len(kids) == 2
    for kid in kids:
        owner = kid["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == (
            "WorkflowInstance",
            parent,
            True,
        )
        assert kid["status"]["phase"] == "Complete"
    steps = {s["name"]: s for s in st["steps"]}
    assert {steps["build-api"]["child"], steps["build-web"]["child"]} == {
        k["metadata"]["name"] for k in kids
    }


def test_a_failed_child_fails_the_parents_step(capped: Tenant) -> None:
    parent = capped.start("pipeline", {"svcs": ["broken"]})
    st = capped.wait_phase(parent, "Complete", "Errored", timeout=120)
    assert st["phase"] == "Errored", st
    assert st["error"]["step"] == "build-broken"
    assert st["error"]["name"] == "ZeroDivisionError"
    assert children(capped, parent)[0]["status"]["phase"] == "Errored"


def test_ending_the_parent_ends_its_children(capped: Tenant) -> None:
    parent = capped.start("pipeline", {"svcs": ["slow"]})
    capped.wait_phase(parent, "Waiting", timeout=60)
    kid = wait_for(
        lambda: (
            (k := children(capped, parent))
            and k[0].get("status", {}).get("phase") == "Waiting"
            and k[0]
        ),
        "the child waiting",
        60,
    )
    name = kid["metadata"]["name"]  # type: ignore[index]
    capped.custom.patch_namespaced_custom_object(
        GROUP, VERSION, capped.ns, "workflowinstances", parent, {"spec": {"terminate": True}}
    )
    capped.wait_phase(parent, "Terminated", timeout=60)
    capped.wait_phase(name, "Terminated", timeout=60)
    # deleting the parent deletes its children (their ownerReferences, the garbage collector)
    capped.custom.delete_namespaced_custom_object(
        GROUP, VERSION, capped.ns, "workflowinstances", parent
    )

    wait_deleted(lambda: capped.get(name), "the child deleted with its parent")


SLOW_PARENT = """
async def run(event, step, env):
    return await step.child("kid", "slow-kid", {})
"""

SLOW_KID = """
import time
async def run(event, step, env):
    def work():
        time.sleep(4)
        return "done"
    return await step.do("work", work)
"""


def test_a_child_that_finishes_while_the_api_server_restarts_wakes_its_parent(
    tenant_factory: Any,
) -> None:
    """Issue 41's e2e reproduction: the child's step ends while kube-apiserver restarts,
    so its finish is written as the operator's watches are cut and resumed; the parent
    still hears of it (its drive or its watch event, whichever comes first; the parent's
    re-read of its children 15 s after starting them, else) and completes."""
    from tenantflow_dev.devcluster import DevCluster

    t: Tenant = tenant_factory(maxStepTimeoutSeconds=60)
    t.define_all(**{"slow-parent": SLOW_PARENT, "slow-kid": SLOW_KID})
    parent = t.start("slow-parent")
    wait_for(lambda: children(t, parent), "the child created", 60)
    time.sleep(1.5)  # its advance under way: its 4 s step ends while the API server is away
    DevCluster().restart("kube-apiserver")
    st = t.wait_phase(parent, "Complete", "Errored", timeout=90)
    assert (st["phase"], st["output"]) == ("Complete", "done"), st
