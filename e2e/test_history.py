"""A tenant's history on a real sandbox pod (issue 34): a finished instance is archived into
the tenant's own store (a volume only the runner container mounts) before its object is
deleted, with the lines its code logged, by step and attempt."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import wait_deleted
from e2e.conftest import GROUP, VERSION, cli
from tenantflow.controllers.sandboxes import Sandboxes
from tenantflow.kube.client import Kube
from tenantflow.sandbox.client.transport import HttpTransport

pytestmark = pytest.mark.e2e
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
LOGGING = """
from tenantflow.sdk import current_attempt

async def run(event, step, env):
    env.log.info("starting", branch=event["payload"]["branch"])
    def build():
        env.log.info("compiling")
        if current_attempt() < 2:
            raise RuntimeError("flaky compiler")
        return "built " + event["payload"]["branch"]
    return await step.do("build", build, retries={"limit": 2, "delay": "1s"})
"""


def ask(kubeconfig: Path, tenant: str, request: dict[str, Any]) -> dict[str, Any]:
    """What the operator would ask the tenant's runner (signed with the tenant's key)."""

    async def call() -> dict[str, Any]:
        kube = await Kube.connect(str(kubeconfig))
        transport = HttpTransport()
        try:
            endpoint = await Sandboxes(kube, mode="cluster").endpoint(tenant)
            return await transport.history(endpoint, request)
        finally:
            await transport.close()
            await kube.close()

    return asyncio.run(call())


def test_a_finished_instance_is_archived_with_its_logs_then_deleted(
    tenant_factory: Any, kubeconfig: Path, kubectl: Kubectl
) -> None:
    tenant = tenant_factory(
        maxStepTimeoutSeconds=60,
        history={"keepFinishedFor": "0s"},
        owners=[{"kind": "User", "name": "alice"}],
    )
    tenant.define_all(logging=LOGGING)
    name = tenant.start("logging", {"branch": "main"})
    uid = tenant.get(name)["metadata"]["uid"]
    wait_deleted(
        lambda: tenant.custom.get_namespaced_custom_object(
            GROUP, VERSION, tenant.ns, "workflowinstances", name
        ),
        f"{name} archived and deleted",
        120,
    )
    got = ask(kubeconfig, tenant.name, {"op": "get", "name": name})["instance"]
    assert got["uid"] == uid and got["phase"] == "Complete"
    assert got["record"]["status"]["output"] == "built main"
    lines = ask(kubeconfig, tenant.name, {"op": "logs", "uid": uid})["lines"]
    assert [(g["message"], g["step"], g["attempt"]) for g in lines] == [
        ("starting", "", 0),
        ("compiling", "build", 1),
        ("compiling", "build", 2),
    ]

    # people read it through the API server, with the tenant's own RBAC
    proxy = f"/api/v1/namespaces/{tenant.ns}/services/sandbox:history/proxy"
    owner = kubectl("--as=alice", "get", "--raw", f"{proxy}/v1/instances/{name}")
    assert json.loads(owner.stdout)["instance"]["uid"] == uid
    stranger = kubectl("--as=mallory", "get", "--raw", f"{proxy}/v1/instances", check=False)
    assert stranger.returncode != 0 and "forbidden" in stranger.stderr.lower()
    shown = cli(kubeconfig, "-n", tenant.ns, "logs", name).stdout
    assert "[build#2] compiling" in shown and "[run] starting" in shown, shown
    second = cli(kubeconfig, "-n", tenant.ns, "logs", name, "--step", "build", "--attempt", "2")
    assert "[build#2] compiling" in second.stdout, second.stdout
    assert "[build#1]" not in second.stdout and "[run]" not in second.stdout, second.stdout
    listed = cli(kubeconfig, "-n", tenant.ns, "archive", "--phase", "Complete").stdout
    assert name in listed, listed


CHATTY = """
async def run(event, step, env):
    def chatter(part):
        for i in range(1500):
            print(f"{part} line {i}")
        return part
    await step.do("first", lambda: chatter("first"))
    await step.sleep("pause", "4s")
    await step.do("second", lambda: chatter("second"))
    return "done"
"""


def test_logs_follow_prints_every_line_once_in_order_until_the_instance_ends(
    tenant_factory: Any, kubeconfig: Path
) -> None:
    """`tenantflow logs -f`: started with the instance, it prints the lines of both
    advances as they are kept (3,000: more than one page of the history API) and exits
    when the instance has ended."""
    tenant = tenant_factory(maxStepTimeoutSeconds=60)
    tenant.define_all(chatty=CHATTY)
    name = tenant.start("chatty")
    follow = cli(kubeconfig, "-n", tenant.ns, "logs", name, "-f")
    assert tenant.get(name)["status"]["phase"] == "Complete", "it ended before -f did"
    printed = [line.split("] ", 1)[1] for line in follow.stdout.splitlines()]
    expected = [f"{part} line {i}" for part in ("first", "second") for i in range(1500)]
    assert printed == expected, (len(printed), printed[:3], printed[-3:])
    assert follow.stdout.splitlines()[0].split()[1] == "stdout"  # the level print() gets
