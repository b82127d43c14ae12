"""Idle sandboxes scale to zero and come back (issue 37, items 1 and 5), on the real node.

A tenant with `spec.sandbox.idleAfter: 20s` has its sandbox StatefulSet scaled to zero
once its instance completed and nothing needed it for 20 s (the Tenant stays Ready, its
data volume stays); a new instance waits as WaitingForSandbox, not as an error, brings a
new pod up and completes on it with the data the first one left; and the new pod's runner
checked its network isolation (the canary) before it took work.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from conftest import wait_for
from e2e.conftest import GROUP, VERSION, Tenant, sandbox_pod
from tenantflow_dev.devcluster import DevCluster

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
pytestmark = pytest.mark.node

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


@pytest.fixture(scope="module", autouse=True)
def real_node(kubeconfig: Path) -> None:
    if os.environ.get("TENANTFLOW_NODE") == "none":
        pytest.skip("TENANTFLOW_NODE=none: the dev cluster was asked not to run pods")
    assert DevCluster().has_node(), "the dev cluster has no real node"


def tenant_status(t: Tenant) -> dict[str, Any]:
    body = t.custom.get_cluster_custom_object(GROUP, VERSION, "tenants", t.name)
    return body.get("status") or {}


def condition(conds: list[dict[str, Any]] | None, kind: str) -> dict[str, Any]:
    return next((c for c in conds or [] if c.get("type") == kind), {})


def sandbox_pods(t: Tenant) -> list[client.V1Pod]:
    return list(
        t.core.list_namespaced_pod(t.ns, label_selector="app.kubernetes.io/name=sandbox").items
    )


def test_an_idle_sandbox_scales_to_zero_and_a_new_instance_brings_it_back_isolated(
    tenant_factory: Callable[..., Tenant], kubectl: Kubectl
) -> None:
    t = tenant_factory(sandbox={"idleAfter": "20s"})
    t.define_all(counted=COUNTED)
    first_pod = sandbox_pod(t)
    first = t.start("counted")
    done = t.wait_phase(first, "Complete", "Errored", timeout=120)
    assert (done["phase"], done.get("output")) == ("Complete", 2), done

    # nothing needs it for idleAfter: scaled to zero, its pod gone, the Tenant still Ready
    apps = client.AppsV1Api(t.core.api_client)
    wait_for(
        lambda: apps.read_namespaced_stateful_set("sandbox", t.ns).spec.replicas == 0,
        "the sandbox StatefulSet at zero replicas",
        90,
    )
    wait_for(lambda: not sandbox_pods(t), "no sandbox pod", 90)
    wait_for(
        lambda: (
            condition(tenant_status(t).get("conditions"), "SandboxScaledToZero").get("status")
            == "True"
        ),
        "SandboxScaledToZero=True on the Tenant",
        30,
    )
    st = tenant_status(t)
    assert st["phase"] == "Ready", st
    assert condition(st["conditions"], "SandboxScaledToZero")["reason"] == "Idle", st
    assert t.core.read_namespaced_persistent_volume_claim("tenant-data", t.ns), "data stays"

    # a new instance needs it: it waits (visibly, not as an error), the sandbox comes back
    second = t.start("counted")
    seen_waiting: list[str] = []

    def finished_or_waiting() -> dict[str, Any] | None:
        st = t.status(second)
        reachable = condition(st.get("conditions"), "SandboxReachable")
        if reachable.get("reason") == "WaitingForSandbox":
            seen_waiting.append(reachable.get("message", ""))
        return st if st.get("phase") in ("Complete", "Errored") else None

    done = wait_for(finished_or_waiting, f"{second} finished", 180)
    assert done["phase"] == "Complete", done
    assert done["output"] == 4, "it ran on the data the first instance left (each step once)"
    assert seen_waiting, "it waited visibly (SandboxReachable=False, WaitingForSandbox)"
    warnings = [
        e.reason
        for e in t.core.list_namespaced_event(
            t.ns, field_selector=f"involvedObject.name={second}"
        ).items
        if e.type == "Warning"
    ]
    assert "WaitingForSandbox" not in warnings, warnings
    tenant_events = [  # (a cluster-scoped object's Events live in some namespace)
        e.reason
        for e in t.core.list_event_for_all_namespaces(
            field_selector=f"involvedObject.name={t.name}"
        ).items
    ]
    assert "SandboxScaledToZero" in tenant_events and "SandboxStarted" in tenant_events

    # a new pod, and its runner checked the isolation canary before it served
    new_pod = sandbox_pod(t)
    assert new_pod.metadata.uid != first_pod.metadata.uid, "a pod scaled up from zero"
    logs = kubectl("-n", t.ns, "logs", new_pod.metadata.name, "-c", "runner").stdout
    isolation = [line for line in logs.splitlines() if "network isolation changed" in line]
    assert isolation, logs[-2000:]
    first_line = isolation[0]
    try:
        assert json.loads(first_line)["isolated"] is True, first_line
    except json.JSONDecodeError:
        assert "isolated=True" in first_line, first_line
    assert condition(tenant_status(t).get("conditions"), "SandboxScaledToZero")["status"] == (
        "False"
    )
