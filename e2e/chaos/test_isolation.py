"""The isolation matrix: every principal of tenant A against every resource of tenant B, and
the other way round — Kubernetes API (SubjectAccessReview as each principal, confirmed by real
impersonated requests), storage and runtime (probes run as tenant code in A's real sandbox),
network (the NetworkPolicies' contents evaluated, and on the real node, packets sent by A's
code to B's runner pod and the API server). Everything must be denied; the counts go to
e2e/chaos/results/latest.json (`cross_tenant_attempts`, `cross_tenant_allowed`).

It runs with a crowd of other tenants present (issue 37.5: their namespaces, policies and
RBAC beside A's and B's, as on a platform with many tenants), and A's probes run in a
sandbox pod that has just come back from zero: a pod scaled up again is fenced before it
takes work, or the network probes would reach B."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from conftest import OperatorProcess, wait_for
from e2e.chaos.faults import processes
from e2e.chaos.netpol import allows
from e2e.chaos.results import record
from e2e.conftest import Tenant
from tenantflow.sandbox.protocol import frames
from tenantflow.tenancy.manifests import HISTORY_PORT, SANDBOX_PORT, ZYGOTE_SOCKET
from tenantflow_dev.devcluster import DevCluster, node, process

pytestmark = pytest.mark.slow
CROWD = 150  # tenants present besides the pair (objects only: their sandboxes at zero)

RESOURCES = [  # (api group, resource) in a tenant namespace
    ("tenantflow.dev", "workflowdefinitions"),
    ("tenantflow.dev", "workflowinstances"),
    ("tenantflow.dev", "workflowinstances/status"),
    ("", "configmaps"),
    ("", "secrets"),
    ("", "pods"),
    ("", "pods/log"),
    ("", "pods/exec"),
    ("", "events"),
    ("", "persistentvolumeclaims"),
    ("", "serviceaccounts"),
    ("", "serviceaccounts/token"),
    ("", "services"),
    ("apps", "statefulsets"),
    ("apps", "controllerrevisions"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("networking.k8s.io", "networkpolicies"),
    ("", "resourcequotas"),
]
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]

PROBES = """
import os, socket, sqlite3

def attempt(fn):
    try:
        fn()
        return "ALLOWED"
    except BaseException as exc:
        return f"denied: {type(exc).__name__}"

async def run(event, step, env):
    p = event["payload"]
    db = p["data_dir"] + "/tenant.sqlite3"

    def symlink_then_read():
        link = p["own_dir"] + "/peek-link"  # in the tenant's own data directory
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(db, link)
        open(link, "rb").read(1)

    def talk_to_worker_host():
        # B's runner socket (local), or the zygote's abstract socket in this pod's network
        # namespace (pod): only a runner may be answered
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(3)
        where = p["socket"]
        s.connect("\\0" + where[1:] if where.startswith("@") else where)
        s.sendall(bytes.fromhex(p["frame"]))
        if not s.recv(1):
            raise ConnectionRefusedError("closed without an answer")

    def probes():
        return {
            "control: env.db works": attempt(lambda: env.db.execute("SELECT 1")),
            "control: read own database file": attempt(
                lambda: open(p["own_dir"] + "/tenant.sqlite3", "rb").read(1)),
            "control: list own data directory": attempt(lambda: os.listdir(p["own_dir"])),
            "control: signal itself": attempt(lambda: os.kill(os.getpid(), 0)),
            "storage: read B's database file": attempt(lambda: open(db, "rb").read(1)),
            "storage: append to B's database file": attempt(lambda: open(db, "ab").write(b"x")),
            "storage: list B's data directory": attempt(lambda: os.listdir(p["data_dir"])),
            "storage: sqlite3.connect B's database": attempt(
                lambda: sqlite3.connect(db).execute("SELECT * FROM secrets").fetchall()),
            "storage: ATTACH B's database to env.db": attempt(
                lambda: env.db.execute("ATTACH DATABASE ? AS b", (db,))),
            "storage: B's table through env.db": attempt(
                lambda: env.db.execute("SELECT * FROM secrets")),
            "storage: symlink to B's database": attempt(symlink_then_read),
            "storage: B's database via /proc/1/root": attempt(
                lambda: open("/proc/1/root" + db, "rb").read(1)),
            "runtime: signal B's runner": attempt(lambda: [os.kill(pid, 0) for pid in p["pids"]]),
            "runtime: read B's runner environment": attempt(
                lambda: [open(f"/proc/{pid}/environ", "rb").read() for pid in p["pids"]]),
            "runtime: start an advance on a worker host": attempt(talk_to_worker_host),
            **{
                f"network: connect to {name}": attempt(
                    lambda h=h, port=port: socket.create_connection((h, port), timeout=2))
                for name, (h, port) in p["network"].items()
            },
        }

    return await step.do("probe", probes, retries={"limit": 0})
"""


def _principals(tenant: Tenant) -> dict[str, dict[str, Any]]:
    """Who acts for a tenant: its owners (user, group, a platform ServiceAccount) and the
    ServiceAccounts in its namespace (the sandbox's and the default)."""
    return {
        f"user {tenant.name}-owner": {"user": f"{tenant.name}-owner@example.com"},
        f"group {tenant.name}-team": {
            "user": "someone@example.com",
            "groups": [f"{tenant.name}-team"],
        },
        f"owner ServiceAccount of {tenant.name}": {
            "user": f"system:serviceaccount:platform:{tenant.name}-ci",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:platform"],
        },
        **{
            f"ServiceAccount {tenant.ns}/{sa}": {
                "user": f"system:serviceaccount:{tenant.ns}:{sa}",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{tenant.ns}"],
            }
            for sa in ("tenant-sandbox", "default")
        },
    }


def _owners(name: str) -> list[dict[str, str]]:
    return [
        {"kind": "User", "name": f"{name}-owner@example.com"},
        {"kind": "Group", "name": f"{name}-team"},
        {"kind": "ServiceAccount", "name": f"{name}-ci", "namespace": "platform"},
    ]


def _can(
    authz: client.AuthorizationV1Api,
    who: dict[str, Any],
    verb: str,
    group: str,
    resource: str,
    namespace: str,
) -> bool:
    res, _, sub = resource.partition("/")
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=who["user"],
            groups=who.get("groups"),
            resource_attributes=client.V1ResourceAttributes(
                group=group, resource=res, subresource=sub or None, verb=verb, namespace=namespace
            ),
        )
    )
    return bool(authz.create_subject_access_review(review).status.allowed)


def _runner(tenant: Tenant, transport: str) -> tuple[list[int], str]:
    """Host pids of the tenant's runner and worker host, and the socket that reaches them:
    the jailed runner's own socket (local), or the zygote's abstract socket (pod: the one
    in A's own network namespace, the only one A can name; its zygote answers only its
    runner's uid)."""
    pids, socket = [], ""
    for pid, (_, cmdline) in processes().items():
        argv = cmdline.split()
        if "--tenant" in argv and argv[argv.index("--tenant") + 1] == tenant.name:
            pids.append(pid)
            if "--socket" in argv:
                socket = argv[argv.index("--socket") + 1]
    if transport == "cluster":
        socket = ZYGOTE_SOCKET  # "@name": abstract
    return pids, socket


def _network_targets(b: Tenant, transport: str, api_port: int) -> dict[str, list[Any]]:
    """Where A's code must not get through to: the API server, and B's runner and its
    read-only history port (pods)."""
    if transport != "cluster":
        return {"the API server": ["127.0.0.1", api_port]}
    pod = b.core.read_namespaced_pod("sandbox-0", b.ns)
    return {
        "B's runner pod": [pod.status.pod_ip, SANDBOX_PORT],
        "B's history (read-only, unsigned)": [pod.status.pod_ip, HISTORY_PORT],
        "the API server's service": ["10.96.0.1", 443],
        "the API server on the node": [node.NODE_IP, api_port],
    }


@pytest.fixture
def crowd(api_client: client.ApiClient, kubectl: Callable[..., Any]) -> Iterator[int]:
    """CROWD more tenants, each with its namespace, quota, policies, RBAC and volumes and
    no sandbox pod, all Ready before the matrix runs; deleted after it."""
    run = uuid.uuid4().hex[:5]
    custom = client.CustomObjectsApi(api_client)
    for i in range(CROWD):
        custom.create_cluster_custom_object(
            "tenantflow.dev",
            "v1beta1",
            "tenants",
            {
                "apiVersion": "tenantflow.dev/v1beta1",
                "kind": "Tenant",
                "metadata": {"name": f"crowd-{run}-{i}", "labels": {"crowd": run}},
                "spec": {"sandbox": {"replicas": 0}},
            },
        )

    def ready() -> bool:
        listed = custom.list_cluster_custom_object(
            "tenantflow.dev", "v1beta1", "tenants", label_selector=f"crowd={run}"
        )["items"]
        return sum((t.get("status") or {}).get("phase") == "Ready" for t in listed) == CROWD

    try:
        wait_for(ready, f"{CROWD} tenants Ready", 600)
        yield CROWD
    finally:
        kubectl("delete", "tenants", "-l", f"crowd={run}", "--wait=false", check=False)


def _scaled_to_zero(tenant: Tenant) -> bool:
    apps = client.AppsV1Api(tenant.core.api_client)
    sts = apps.read_namespaced_stateful_set("sandbox", tenant.ns)
    pods = tenant.core.list_namespaced_pod(
        tenant.ns, label_selector="app.kubernetes.io/name=sandbox"
    ).items
    return sts.spec.replicas == 0 and not pods


def test_no_principal_of_one_tenant_reaches_another(
    tenant_factory: Callable[..., Tenant],
    api_client: client.ApiClient,
    kubectl: Callable[..., Any],
    operator_process: OperatorProcess,
    crowd: int,
) -> None:
    # A's sandbox goes to zero when idle: its probes run in a pod come back from zero
    pair = [tenant_factory(sandbox={"idleAfter": "5s"}), tenant_factory()]
    for t in pair:  # owners of every kind, so each kind of principal is in the matrix
        t.custom.patch_cluster_custom_object(
            "tenantflow.dev", "v1beta1", "tenants", t.name, {"spec": {"owners": _owners(t.name)}}
        )
    authz = client.AuthorizationV1Api(api_client)
    attempts, allowed = 0, []
    for me, other in (pair, pair[::-1]):
        for label, who in _principals(me).items():
            if not label.startswith("ServiceAccount"):  # a control: the matrix is not vacuous
                wait_for(
                    lambda who=who, ns=me.ns: _can(
                        authz, who, "create", "tenantflow.dev", "workflowinstances", ns
                    ),
                    f"{label} may run workflows in {me.ns} (the owners were applied)",
                )
            for group, resource in RESOURCES:
                for verb in VERBS:
                    attempts += 1
                    if _can(authz, who, verb, group, resource, other.ns):
                        allowed.append(f"{label}: {verb} {resource} in {other.ns}")
            attempts += 2
            for verb in ("get", "patch"):  # the other tenant itself, cluster-scoped
                if _can(authz, who, verb, "tenantflow.dev", "tenants", ""):
                    allowed.append(f"{label}: {verb} tenants")
        # real requests, impersonated, agree with the reviews
        as_owner = f"--as={me.name}-owner@example.com"
        for args in (("get", "secrets"), ("get", "wfi"), ("delete", "configmap", "x")):
            attempts += 1
            done = kubectl(*args, as_owner, "-n", other.ns, check=False)
            if done.returncode == 0 or "forbidden" not in done.stderr:
                allowed.append(f"kubectl {' '.join(args)} as {me.name}'s owner: {done.stderr}")
        # network: nothing in `other` admits `me`'s pods, nothing in `me` lets them out to it
        policies = [
            client.ApiClient().sanitize_for_serialization(p)
            for p in client.NetworkingV1Api(api_client)
            .list_namespaced_network_policy(other.ns)
            .items
        ]
        mine = [
            client.ApiClient().sanitize_for_serialization(p)
            for p in client.NetworkingV1Api(api_client).list_namespaced_network_policy(me.ns).items
        ]
        for pod in ({"app.kubernetes.io/name": "sandbox"}, {"app": "anything"}):
            attempts += 2
            if allows(policies, "Ingress", pod, peer_namespace=me.ns):
                allowed.append(f"ingress into {other.ns} {pod} from {me.ns}")
            if allows(mine, "Egress", pod, peer_namespace=other.ns):
                allowed.append(f"egress from {me.ns} {pod} to {other.ns}")

    # storage and runtime: tenant code in A probing B, through A's real sandbox
    a, b = pair
    b.define(
        "secret",
        "async def run(event, step, env):\n"
        "    env.db.execute('CREATE TABLE secrets (v TEXT)')\n"
        "    env.db.execute(\"INSERT INTO secrets VALUES ('b-only')\")\n"
        "    return 'stored'\n",
    )
    b.wait_revision("secret", 1)
    assert b.wait_phase(b.start("secret"), "Complete")["output"] == "stored"
    b_dir = b.data_dir()
    transport = operator_process.sandboxes
    pids, socket = _runner(b, transport)
    assert pids and socket, "B's runner is running (its pids and socket are probed)"
    a.define("probes", PROBES)
    a.wait_revision("probes", 1)
    api_port = int(api_client.configuration.host.rsplit(":", 1)[1])
    params = {
        "data_dir": str(b_dir),  # the host's path (pod: not even in A's mount namespace)
        "own_dir": "/data" if transport == "cluster" else str(a.data_dir()),
        "pids": pids,
        "socket": socket,
        "frame": frames.encode({"op": "ping"}).hex(),
        "network": _network_targets(b, transport, api_port),
    }
    if transport == "cluster":  # A's sandbox at zero: its probes run in a pod started anew
        wait_for(lambda: _scaled_to_zero(a), f"{a.ns}'s sandbox scaled to zero", 120)
    # no waiting for the enforcer: A's runner runs no tenant code before its pod is fenced
    done = a.wait_phase(a.start("probes", params), "Complete", "Errored", timeout=180)
    assert done["phase"] == "Complete", done
    for probe, verdict in done["output"].items():
        if probe.startswith("control:"):  # the same techniques work on A's own things
            assert verdict == "ALLOWED", (probe, verdict)
            continue
        attempts += 1
        if not verdict.startswith("denied"):
            allowed.append(f"{probe}: {verdict}")
    print(done["output"])
    assert b.query("SELECT v FROM secrets") == [("b-only",)], "B's data is intact"

    record(
        "isolation",
        {
            "cross_tenant_attempts": attempts,
            "cross_tenant_allowed": len(allowed),
            "tenants_present": crowd + len(pair),
        },
    )
    if transport == "cluster" and any(p.startswith("network") for p in allowed):
        print(f"network state kept for diagnosis in {_dump_network_state(pair)}")
    assert not allowed, allowed


def _dump_network_state(pair: list[Tenant]) -> Path:
    """What the enforcer and the node looked like when a packet got through: the tables,
    the sets, both pods' addresses and kube-router's last log lines (kept for diagnosis)."""
    cluster = DevCluster()
    logs = cluster.dir / "logs"
    out = logs / "isolation-network-state.txt"
    pods = [t.core.read_namespaced_pod("sandbox-0", t.ns) for t in pair]
    parts = [f"{t.ns}: {pod.status}" for t, pod in zip(pair, pods, strict=True)]
    for argv in (["iptables-save"], ["ipset", "list"], ["ip", "-d", "addr"], ["ip", "route"]):
        dump = subprocess.run(argv, capture_output=True, text=True).stdout
        parts.append(f"--- {' '.join(argv)}\n{dump}")
    router_log = process.log_tail(logs / "kube-router.log", 200)
    parts.append(f"--- kube-router.log\n{router_log}")
    out.write_text("\n".join(parts))
    # the gist on stdout too: a CI machine's cluster directory is gone after the run
    ips = [pod.status.pod_ip for pod in pods]
    rules = [
        r
        for r in parts[len(pair)].splitlines()
        if r.startswith(("-A FORWARD", "-A INPUT")) or any(f"{ip}/32" in r for ip in ips if ip)
    ]
    print("pods:", [(p.metadata.uid, p.status.pod_ip, p.status.start_time) for p in pods])
    print("rules:", *rules[:60], sep="\n  ")
    print("kube-router:", *router_log.splitlines()[-30:], sep="\n  ")
    return out
