"""Tenant sandboxes as real pods on the dev cluster's kubelet node.

What only a real node can show: the tenant's database outlives its pod, the kernel's
memory limit stops a step, and the NetworkPolicies are packets dropped or let through —
probed from inside the sandbox by tenant code, where an attacker would stand.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from conftest import wait_for
from e2e.conftest import Tenant, mount_secret, sandbox_pod
from tenantflow_dev.devcluster import DevCluster, images, node

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
pytestmark = pytest.mark.node

EGRESS_IP = "10.246.7.1"  # an address this test adds to the node bridge: local, never routed out
EGRESS_CIDR = "10.246.7.0/24"


@pytest.fixture(scope="module", autouse=True)
def real_node(kubeconfig: Path) -> None:
    if os.environ.get("TENANTFLOW_NODE") == "none":
        pytest.skip("TENANTFLOW_NODE=none: the dev cluster was asked not to run pods")
    assert DevCluster().has_node(), (
        "the dev cluster has no real node: see the warning of `tenantflow-dev-cluster up` "
        "(root and `make sysdeps` are needed)"
    )


def test_env_db_survives_deleting_the_sandbox_pod(tenant_factory: Callable[..., Tenant]) -> None:
    tenant = tenant_factory()
    tenant.define(
        "keep",
        """
        async def run(event, step, env):
            def write():
                env.db.execute("CREATE TABLE IF NOT EXISTS notes (v TEXT)")
                env.db.execute("INSERT INTO notes VALUES ('before the pod died')")
                return True
            await step.do("write", write)
            await step.wait_for_event("go", type="go", timeout="10m")
            rows = await step.do("read", lambda: env.db.query("SELECT v FROM notes"))
            return [r["v"] for r in rows]
        """,
    )
    inst = tenant.start("keep")
    tenant.wait_phase(inst, "Waiting", timeout=120)
    first = sandbox_pod(tenant)
    assert first.spec.node_name == node.NODE_NAME
    tenant.core.delete_namespaced_pod(first.metadata.name, tenant.ns, grace_period_seconds=0)
    wait_for(
        lambda: sandbox_pod(tenant).metadata.uid != first.metadata.uid,
        "the StatefulSet's replacement pod",
        120,
    )
    tenant.send_event(inst, "go")
    status = tenant.wait_phase(inst, "Complete", "Errored", timeout=120)
    assert status["phase"] == "Complete", status
    assert status["output"] == ["before the pod died"]


def test_a_step_over_the_memory_limit_is_stopped_by_the_kernel(
    tenant_factory: Callable[..., Tenant],
) -> None:
    tenant = tenant_factory(
        sandbox={"resources": {"limits": {"cpu": "1", "memory": "192Mi"}}},
    )
    tenant.define(
        "hog",
        """
        async def run(event, step, env):
            await step.do("small", lambda: "fine")
            def hog():
                blocks = []
                for _ in range(64):  # touched pages, 16 MiB at a time: 1 GiB in all
                    blocks.append(b"x" * (16 << 20))
                return len(blocks)
            return await step.do("hog", hog, retries={"limit": 1, "delay": "1s"})
        """,
    )
    inst = tenant.start("hog")
    status = tenant.wait_phase(inst, "Errored", "Complete", timeout=240)
    assert status["phase"] == "Errored", status
    steps = {s["name"]: s for s in status.get("steps") or []}
    assert steps["small"]["state"] == "Complete", status
    assert steps["hog"]["state"] == "Errored", steps
    assert steps["hog"]["attempts"] == 2, "one attempt and one retry, as the step asked"
    assert steps["hog"]["error"]["name"] == "OutOfMemory", steps["hog"]
    assert "192Mi" in steps["hog"]["error"]["message"]
    assert status["error"]["name"] == "OutOfMemory"
    # the sandbox itself survived: the next instance runs in the same pod
    pod = sandbox_pod(tenant)
    restarts = sum(s.restart_count for s in pod.status.container_statuses or [])
    assert restarts == 0, "only the advance's process was killed, not the worker container"


# ---------------------------------------------------------------------------- network
PROBE = """
import socket

def probe(host, port):
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            return "open:" + s.recv(64).decode(errors="replace")
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return "blocked:" + type(exc).__name__

async def run(event, step, env):
    out = {}
    for name, (host, port) in sorted(event["payload"].items()):
        out[name] = await step.do("probe-" + name, lambda h=host, p=port: probe(h, p))
    return out
"""


@pytest.fixture
def egress_server() -> Iterator[int]:
    """A TCP server on an address this test adds to the node bridge (never routed out)."""
    subprocess.run(["ip", "addr", "add", f"{EGRESS_IP}/32", "dev", node.NODE_BRIDGE], check=True)
    server = socket.create_server((EGRESS_IP, 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                conn, _ = server.accept()
                with conn:
                    conn.sendall(b"egress-ok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join(5)
    server.close()
    subprocess.run(["ip", "addr", "del", f"{EGRESS_IP}/32", "dev", node.NODE_BRIDGE], check=False)


def test_network_isolation_is_enforced_on_packets(
    tenant_factory: Callable[..., Tenant], egress_server: int, kubeconfig: Path
) -> None:
    allowed = tenant_factory(sandbox={"egress": [EGRESS_CIDR]})
    other = tenant_factory()
    other_pod = sandbox_pod(other)
    sandbox_pod(allowed)  # no waiting for the enforcer: runners wait until their pod is fenced
    api_port = DevCluster().api_port()
    targets: dict[str, Any] = {
        "other-tenant-runner": [other_pod.status.pod_ip, 8080],
        "apiserver-service": ["10.96.0.1", 443],
        "apiserver-node-ip": [node.NODE_IP, api_port],
        "allowed-egress": [EGRESS_IP, egress_server],
    }
    results = {}
    for tenant in (allowed, other):
        tenant.define("probe", PROBE)
        inst = tenant.start("probe", targets)
        status = tenant.wait_phase(inst, "Complete", "Errored", timeout=180)
        assert status["phase"] == "Complete", status
        results[tenant.name] = status["output"]
    mine, theirs = results[allowed.name], results[other.name]
    for name in ("other-tenant-runner", "apiserver-service", "apiserver-node-ip"):
        assert not mine[name].startswith("open"), (name, mine)
        assert not theirs[name].startswith("open"), (name, theirs)
    assert mine["allowed-egress"] == "open:egress-ok", json.dumps(results)
    assert not theirs["allowed-egress"].startswith("open"), "no egress CIDR, no egress"


SECRET_TOKEN = "tf-e2e-token-8d1f2c"


def test_secrets_are_read_only_files_for_tenant_code_and_masked_in_the_status(
    tenant_factory: Callable[..., Tenant], kubectl: Kubectl
) -> None:
    tenant = tenant_factory(sandbox={"secrets": ["git", "npm"]})  # npm: never created
    tenant.core.create_namespaced_secret(
        tenant.ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="git"), string_data={"token": SECRET_TOKEN}
        ),
    )
    mount_secret(tenant, kubectl, "git")
    tenant.define(
        "uses",
        """
        import os
        async def run(event, step, env):
            token = env.secrets["git"]["token"]
            env.log.info(f"cloning with {token}")
            def look():
                in_env = sorted(k for k, v in os.environ.items() if token in v)
                try:
                    with open("/var/run/secrets/tenantflow/git/token", "a") as f:
                        f.write("x")
                    writable = True
                except OSError:
                    writable = False
                return {"token": token, "in_env": in_env, "writable": writable}
            got = await step.do("look", look)
            try:
                env.secrets["npm"]["token"]
                missing = None
            except KeyError as exc:
                missing = str(exc)
            return {**got, "missing": missing}
        """,
    )
    tenant.wait_revision("uses", 1)
    inst = tenant.start("uses")
    status = tenant.wait_phase(inst, "Complete", "Errored", timeout=120)
    assert status["phase"] == "Complete", status
    out = status["output"]
    assert out["token"] == "***", "the value is masked before it reaches the status"
    assert out["in_env"] == [] and out["writable"] is False
    assert f"does not exist in namespace {tenant.ns}" in out["missing"]
    events = tenant.core.list_namespaced_event(tenant.ns).items
    seen = json.dumps([tenant.get(inst), [e.message for e in events]], default=str)
    assert SECRET_TOKEN not in seen and "***" in seen


IMPORTS = """
import importlib.util
async def run(event, step):
    return await step.do("find", lambda: importlib.util.find_spec("semver") is not None)
"""


def test_a_platform_image_gives_its_libraries_and_a_refused_image_changes_nothing(
    tenant_factory: Callable[..., Tenant],
) -> None:
    own = tenant_factory(sandbox={"image": images.ref("sandbox-example")})
    plain = tenant_factory()
    for tenant, expected in ((own, True), (plain, False)):
        tenant.define("imports", IMPORTS)
        tenant.wait_revision("imports", 1)
        status = tenant.wait_phase(tenant.start("imports"), "Complete", "Errored", timeout=120)
        assert status.get("output") is expected, (tenant.name, status)
    running = sandbox_pod(plain)
    plain.custom.patch_cluster_custom_object(
        "tenantflow.dev",
        "v1beta1",
        "tenants",
        plain.name,
        {"spec": {"sandbox": {"image": "evil.example.com/miner:1"}}},
    )

    def refused() -> dict[str, Any] | None:
        t = plain.custom.get_cluster_custom_object(
            "tenantflow.dev", "v1beta1", "tenants", plain.name
        )
        conds = {c["type"]: c for c in (t.get("status") or {}).get("conditions") or []}
        return conds.get("SandboxReady") if t["status"].get("phase") == "Degraded" else None

    cond = wait_for(refused, "the Tenant Degraded by its refused image", 60)
    assert cond["reason"] == "ImageNotAllowed" and "allowedImages" in cond["message"]
    assert sandbox_pod(plain).metadata.uid == running.metadata.uid, "the sandbox kept running"
    assert all(c.image == images.ref("sandbox") for c in sandbox_pod(plain).spec.containers)


GIT_IP = "10.246.8.1"  # another address on the node bridge, for the egress proxy's upstream


@pytest.fixture
def http_server() -> Iterator[int]:
    """An HTTP server on an address this test adds to the node bridge (never routed out)."""

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"hello from {self.headers['Host']}{self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    subprocess.run(["ip", "addr", "add", f"{GIT_IP}/32", "dev", node.NODE_BRIDGE], check=True)
    server = http.server.ThreadingHTTPServer((GIT_IP, 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    subprocess.run(["ip", "addr", "del", f"{GIT_IP}/32", "dev", node.NODE_BRIDGE], check=False)


FETCH = """
import socket
import urllib.error
import urllib.request

def fetch(url):
    try:
        return urllib.request.urlopen(url, timeout=20).read().decode()
    except urllib.error.HTTPError as exc:  # the proxy's answer
        return f"refused: {exc}"
    # anything else (the proxy's Service without endpoints for a moment): the step retries

def direct(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "open"
    except OSError as exc:
        return f"blocked: {type(exc).__name__}"

async def run(event, step):
    p = event["payload"]
    port, out = p["port"], {}
    for host in ("git.tenantflow.test", "other.tenantflow.test", "node.tenantflow.test"):
        out[host] = await step.do(host, lambda h=host: fetch(f"http://{h}:{port}/repo.git"))
    out["direct"] = await step.do("direct", lambda: direct(p["ip"], port))
    return out
"""


def test_egress_by_host_name_goes_through_the_proxy_and_only_there(
    tenant_factory: Callable[..., Tenant], http_server: int
) -> None:
    hosts = [
        {"host": "git.tenantflow.test", "ports": [http_server], "addresses": [GIT_IP]},
        # allowed by name, but pinned into the cluster (the node): the proxy refuses it
        {"host": "node.tenantflow.test", "ports": [http_server], "addresses": [node.NODE_IP]},
    ]
    tenant = tenant_factory(sandbox={"egressHosts": hosts})
    tenant.define("fetch", FETCH)
    tenant.wait_revision("fetch", 1)
    inst = tenant.start("fetch", {"port": http_server, "ip": GIT_IP})
    status = tenant.wait_phase(inst, "Complete", "Errored", timeout=180)
    assert status["phase"] == "Complete", status
    out = status["output"]
    assert out["git.tenantflow.test"] == f"hello from git.tenantflow.test:{http_server}/repo.git"
    assert "403" in out["other.tenantflow.test"], out
    assert "not in the tenant's egress allow-list" in out["other.tenantflow.test"]
    assert "protected ranges" in out["node.tenantflow.test"], out
    assert out["direct"].startswith("blocked"), "nothing but the proxy is reachable"
    proxy = next(
        p
        for p in tenant.core.list_namespaced_pod(tenant.ns).items
        if p.metadata.labels.get("app.kubernetes.io/name") == "egress-proxy"
    )
    log = tenant.core.read_namespaced_pod_log(  # raw: the client would decode JSON itself
        proxy.metadata.name, tenant.ns, _preload_content=False
    ).data.decode()
    audit = [json.loads(line) for line in log.splitlines() if "egress denied" in line]
    assert {a["host"] for a in audit} == {"other.tenantflow.test", "node.tenantflow.test"}


# ---------------------------------------------------------------------------- storage
def test_a_tenants_files_and_env_db_stop_at_the_pvc_size(
    tenant_factory: Callable[..., Tenant],
) -> None:
    """The PVC's size bounds the total of the tenant's files (the dev provisioner's volume
    is a loop-mounted filesystem of that size): files stop at it with ENOSPC, env.db then
    fails with an error naming the limit, and the database is whole afterwards."""
    tenant = tenant_factory(storage="32Mi")
    tenant.define(
        "fill",
        """
        import errno
        import os

        async def run(event, step, env):
            def files():
                st = os.statvfs("/data")
                written, refused = 0, None
                try:
                    for i in range(96):  # 96 MiB, three times the limit
                        with open(f"/data/scratch/fill-{i}", "wb") as f:
                            f.write(b"x" * (1 << 20))
                            f.flush()
                            os.fsync(f.fileno())
                        written += 1
                except OSError as exc:
                    refused = errno.errorcode.get(exc.errno)
                for i in range(written):
                    if i >= 12:  # 12 MiB stay: env.db gets the rest
                        os.remove(f"/data/scratch/fill-{i}")
                return {"size": st.f_blocks * st.f_frsize, "written": written, "refused": refused}

            def grow():
                env.db.execute("CREATE TABLE IF NOT EXISTS big (b BLOB)")
                kept = 0
                try:
                    for _ in range(200):
                        env.db.execute("INSERT INTO big VALUES (zeroblob(262144))")
                        kept += 1
                except Exception as exc:
                    return {"kept": kept, "error": type(exc).__name__, "message": str(exc)}
                return {"kept": kept, "error": None}

            def check():
                rows = env.db.query("SELECT count(*) AS n FROM big")[0]["n"]
                ok = env.db.query("PRAGMA integrity_check")[0]["integrity_check"]
                return {"rows": rows, "integrity": ok}

            return {
                "files": await step.do("files", files, retries={"limit": 0}),
                "db": await step.do("grow", grow, retries={"limit": 0}),
                "check": await step.do("check", check, retries={"limit": 0}),
            }
        """,
    )
    inst = tenant.start("fill")
    status = tenant.wait_phase(inst, "Complete", "Errored", timeout=240)
    assert status["phase"] == "Complete", status
    out = status["output"]
    assert out["files"]["size"] <= 32 << 20, out  # the volume is the PVC's size
    assert out["files"]["refused"] == "ENOSPC" and out["files"]["written"] < 32, out
    assert out["db"]["error"] == "StorageQuotaExceeded", out
    assert "32 MiB" in out["db"]["message"] and "spec.limits.storage" in out["db"]["message"]
    assert 0 < out["db"]["kept"] < 128, out  # 12 MiB of files left room, not 32 MiB
    assert out["check"] == {"rows": out["db"]["kept"], "integrity": "ok"}, out
