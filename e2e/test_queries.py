"""Queries (issue 36.7) on real sandbox pods: a value a waiting instance exposes
(`step.query`), answered by a read-only replay in its sandbox, read through the API
server's service proxy with the tenant's RBAC — a tenant viewer may, another tenant's
user may not — and through the CLI; the instance then goes on as if nobody had asked."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import GROUP, VERSION, cli

pytestmark = pytest.mark.e2e
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
QUERYING = """
async def run(event, step, env):
    done = []
    step.query("progress", lambda: {"done": list(done), "total": 3})
    step.query("item", lambda i: done[i])
    step.query("boom", lambda: 1 / 0)
    step.query("write", lambda: env.db.execute("CREATE TABLE planted (x)"))
    for i in range(3):
        done.append(await step.do(f"s{i}", lambda i=i: i * 10))
        if i == 1:
            await step.wait_for_event("go", type="go", timeout="1h")
    return done
"""


def test_a_viewer_queries_a_waiting_instance_and_another_tenants_user_may_not(
    tenant_factory: Any, kubeconfig: Path, kubectl: Kubectl
) -> None:
    tenant = tenant_factory(owners=[{"kind": "User", "name": "alice"}])
    tenant_factory(owners=[{"kind": "User", "name": "mallory"}])  # mallory owns another
    kubectl(
        "-n", tenant.ns, "create", "rolebinding", "victor-views", "--role=tenant-viewer",
        "--user=victor",
    )  # fmt: skip
    tenant.define_all(querying=QUERYING)
    name = tenant.start("querying")
    status = tenant.wait_phase(name, "Waiting", timeout=120)  # (its status)
    body = tenant.custom.get_namespaced_custom_object(
        GROUP, VERSION, tenant.ns, "workflowinstances", name
    )
    uid = body["metadata"]["uid"]
    assert status["queries"] == ["boom", "item", "progress", "write"]

    proxy = f"/api/v1/namespaces/{tenant.ns}/services/sandbox:history/proxy/v1/queries/{uid}"
    for user in ("alice", "victor"):  # the tenant's editor and viewer
        got = kubectl(f"--as={user}", "get", "--raw", f"{proxy}/progress")
        answer = json.loads(got.stdout)
        assert answer["value"] == {"done": [0, 10], "total": 3}, answer
        assert answer["asOf"]["phase"] == "Waiting"
    stranger = kubectl("--as=mallory", "get", "--raw", f"{proxy}/progress", check=False)
    assert stranger.returncode != 0 and "forbidden" in stranger.stderr.lower(), stranger.stderr
    nobody = kubectl("--as=nobody", "get", "--raw", f"{proxy}/progress", check=False)
    assert nobody.returncode != 0 and "forbidden" in nobody.stderr.lower()

    shown = cli(kubeconfig, "-n", tenant.ns, "query", name, "item", "--args", "[1]")
    assert shown.stdout.startswith("10") and "as of 3 journal entries" in shown.stdout
    broken = cli(kubeconfig, "-n", tenant.ns, "query", name, "boom", check=False)
    assert broken.returncode == 1 and "ZeroDivisionError" in broken.stderr, broken.stderr
    unknown = cli(kubeconfig, "-n", tenant.ns, "query", name, "nope", check=False)
    assert unknown.returncode == 1 and "registered: boom, item, progress, write" in unknown.stderr
    refused = cli(kubeconfig, "-n", tenant.ns, "query", name, "write", check=False)
    assert refused.returncode == 1 and "read-only in a query handler" in refused.stderr

    # the queries changed nothing: the instance goes on, each step ran once
    tenant.send_event(name, "go")
    done = tenant.wait_phase(name, "Complete", timeout=120)
    assert done["output"] == [0, 10, 20]
    assert [s["attempts"] for s in done["steps"] if s["kind"] == "do"] == [1, 1, 1]
    deadline = time.monotonic() + 30
    while True:  # the finished instance answers with its last values
        answer = json.loads(kubectl("--as=victor", "get", "--raw", f"{proxy}/progress").stdout)
        if answer["asOf"]["phase"] == "Complete" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert answer["value"] == {"done": [0, 10, 20], "total": 3}, answer
