"""DevCluster: bring the local control plane up, report on it, and tear it down."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tenantflow.errors import DevClusterError
from tenantflow.observability.logging import get_logger
from tenantflow.paths import cache_dir
from tenantflow_dev.devcluster import (
    binaries,
    bootstrap,
    kubeconfig,
    node,
    process,
    versions,
    watchdog,
)
from tenantflow_dev.devcluster.pki import CertificateAuthority, KeyPair, service_account_keys
from tenantflow_dev.devcluster.state import State

log = get_logger("tenantflow_dev.devcluster")

# Components in start order; `down` stops them in reverse (the watchdog first).
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    *node.COMPONENTS,
    watchdog.NAME,
)
VOLUMES_ROOT = Path("/var/lib/tenantflow/dev-volumes")
FAKE_NODES = 3
_PORT_RETRIES = 3


class DevCluster:
    """One local control plane rooted at `directory` (default ~/.cache/tenantflow/clusters/dev)."""

    def __init__(self, directory: Path | None = None) -> None:
        default = cache_dir() / "clusters" / "dev"
        self.dir = Path(directory or os.environ.get("TENANTFLOW_CLUSTER_DIR") or default).resolve()
        self.kubeconfig = self.dir / "kubeconfig"
        self._state_file = self.dir / "state.json"
        self._logs = self.dir / "logs"
        self._pki = self.dir / "pki"
        # tenants' volumes, outside root's home: host tools (tests reading a tenant's
        # database as its owner) must be able to reach them as that uid
        self.volumes = VOLUMES_ROOT / hashlib.sha256(str(self.dir).encode()).hexdigest()[:12]

    # ------------------------------------------------------------------ public API
    def up(self, *, timeout: float = 180.0, with_node: bool | None = None) -> Path:
        """Start (or reuse) the cluster; returns the admin kubeconfig path once it is ready.

        `with_node` (default: env TENANTFLOW_NODE, else "real" when this machine can run
        one): a real kubelet node that runs pods, next to kwok's fake nodes.
        """
        bins = binaries.ensure_binaries()
        want_node = _want_node() if with_node is None else with_node
        if self.healthy():
            running = State.load(self._state_file) or State()
            if running.node == want_node:
                log.info("dev cluster already running", kubeconfig=str(self.kubeconfig))
                if running.node:  # new pods get the images of the code as it is now
                    node.import_images(node.NodePaths(self.dir / "node"))
                return self.kubeconfig
        self._clean_stale()
        started = time.monotonic()
        self.dir.mkdir(parents=True)
        state = State(bin_dir=str(bins), node=want_node)
        if want_node:
            node.setup_network(self.dir / "node")
            state.address = node.NODE_IP
        self._write_credentials()
        deadline = started + timeout
        self._start_etcd(state, bins, deadline)
        self._start_apiserver(state, bins, deadline)
        self._write_kubeconfigs(state)
        self._start_controllers(state, bins)
        state.save(self._state_file)
        if want_node:
            self._start_node(state, bins, deadline)
        self._bootstrap(state, bins, deadline)
        self._spawn(
            state, watchdog.NAME, [sys.executable, "-m", watchdog.__name__, f"--dir={self.dir}/"]
        )
        state.save(self._state_file)
        log.info(
            "dev cluster ready",
            seconds=round(time.monotonic() - started, 1),
            kubeconfig=str(self.kubeconfig),
            server=self.server(state),
        )
        return self.kubeconfig

    def down(self) -> bool:
        """Stop exactly the processes this cluster started and remove its directory."""
        from tenantflow.sandbox.jail.local import remove_stale_cgroups
        from tenantflow_dev.devcluster import provisioner

        if not self.dir.exists():
            return False
        state = State.load(self._state_file) or State()
        if watchdog.NAME in state.pids:  # first, or it starts again what we stop
            process.stop([state.pids[watchdog.NAME]], self.dir)
        process.stop([state.pids[c] for c in reversed(COMPONENTS) if c in state.pids], self.dir)
        process.stop(process.owned_pids(self.dir), self.dir)  # shims, strays of a crash
        remove_stale_cgroups()  # local sandboxes' jails, once their runners are gone
        if state.node or (self.dir / "node").exists():
            node.teardown(self.dir / "node", Path(state.bin_dir or versions.bin_dir()))
        # the volumes' loop mounts, once no pod uses them (their loop devices detach)
        provisioner.unmount_all(self.volumes)
        shutil.rmtree(self.volumes, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        log.info("dev cluster stopped", directory=str(self.dir))
        return True

    def restart(self, component: str, *, timeout: float = 60.0) -> None:
        """Stop one component and let the watchdog start it again with the same flags and
        ports (chaos tests: an API server or etcd restart under load); waits until it is
        back and the API is ready."""
        state = State.load(self._state_file)
        if state is None or component not in state.argv or component == watchdog.NAME:
            raise DevClusterError(f"cannot restart {component}: the dev cluster is not running")
        before = state.pids[component]
        watchdog.request_marker(self.dir, component).touch()
        process.stop([before], self.dir)

        def back() -> bool:
            now = State.load(self._state_file)
            return now is not None and now.pids[component] != before and self._readyz(now)

        _wait(
            f"{component} back and the API ready", back, time.monotonic() + timeout, self._diagnose
        )

    def status(self) -> dict[str, object]:
        """Per-component liveness plus API readiness, for `tenantflow-dev-cluster status`."""
        state = State.load(self._state_file)
        if state is None:
            return {"running": False, "directory": str(self.dir)}
        procs = {c: process.is_ours(state.pids[c], self.dir) for c in COMPONENTS if c in state.pids}
        ready = all(procs.values()) and self._readyz(state)
        return {
            "running": ready,
            "directory": str(self.dir),
            "server": self.server(state),
            "kubeconfig": str(self.kubeconfig),
            "components": procs,
            "restarts": state.restarts,
            "node": node.NODE_NAME if state.node else None,
        }

    def healthy(self) -> bool:
        return bool(self.status().get("running"))

    def env(self) -> dict[str, str]:
        """Environment variables that point kubectl, helm and the operator at this cluster."""
        state = State.load(self._state_file)
        if state is None:
            raise DevClusterError(
                "the dev cluster is not running; start it with `make demo` "
                "or `tenantflow-dev-cluster up`"
            )
        path = os.environ.get("PATH", "")
        return {"KUBECONFIG": str(self.kubeconfig), "PATH": f"{state.bin_dir}:{path}"}

    def api_port(self) -> int:
        """The API server's port (on 127.0.0.1, or on the node IP with a node)."""
        state = State.load(self._state_file)
        if state is None:
            raise DevClusterError("the dev cluster is not running")
        return state.ports["apiserver"]

    def has_node(self) -> bool:
        """True when a real kubelet node runs this cluster's pods."""
        state = State.load(self._state_file)
        return bool(state and state.node)

    @staticmethod
    def server(state: State) -> str:
        return f"https://{state.address}:{state.ports.get('apiserver', 0)}"

    # ------------------------------------------------------------------ start-up steps
    def _clean_stale(self) -> None:
        stale = process.owned_pids(self.dir)
        if stale:
            log.warning("stopping processes left by an earlier run", pids=stale)
        self.down()

    def _write_credentials(self) -> None:
        ca = CertificateAuthority(self._pki)
        ca.issue(
            "apiserver",
            cn="kube-apiserver",
            server_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server_ips=("127.0.0.1", "10.96.0.1", node.NODE_IP),
        )
        ca.issue("admin", cn="tenantflow-admin", org="system:masters")
        ca.issue("controller-manager", cn="system:kube-controller-manager")
        ca.issue("scheduler", cn="system:kube-scheduler")
        # the node: kubelet's serving cert carries the node IP (or logs/exec fail with x509)
        ca.issue("kubelet", cn=node.NODE_NAME, server_ips=(node.NODE_IP,))
        ca.issue("kubelet-client", cn=f"system:node:{node.NODE_NAME}", org="system:nodes")
        ca.issue("kube-proxy", cn="system:kube-proxy")
        ca.issue("kube-router", cn=node.ROUTER_USER)
        ca.issue(
            "apiserver-kubelet-client", cn="kube-apiserver-kubelet-client", org="system:masters"
        )
        service_account_keys(self._pki)

    def _start_etcd(self, state: State, bins: Path, deadline: float) -> None:
        def argv() -> list[str]:
            client, peer = process.free_port(), process.free_port()
            state.ports.update(etcd=client, etcd_peer=peer)
            return [
                str(bins / "etcd"),
                "--name=dev",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=dev=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",  # throwaway data: trade durability for speed
                "--quota-backend-bytes=8589934592",
                "--log-level=warn",
            ]

        def ready() -> bool:
            return _http_ok(f"http://127.0.0.1:{state.ports['etcd']}/health", None)

        self._start_with_retry("etcd", argv, ready, state, deadline)

    def _start_apiserver(self, state: State, bins: Path, deadline: float) -> None:
        pki = self._pki

        def argv() -> list[str]:
            port = process.free_port()
            state.ports["apiserver"] = port
            return [
                str(bins / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{state.ports['etcd']}",
                f"--bind-address={state.address}",
                f"--advertise-address={state.address}",
                f"--secure-port={port}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={node.SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction,PodSecurity",
                "--allow-privileged=true",
                # a loopback address may not be an endpoint; the node IP is
                f"--endpoint-reconciler-type={'lease' if state.node else 'none'}",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP",
                "--max-requests-inflight=1000",
                "--max-mutating-requests-inflight=500",
                # /debug/pprof for the admin alone (RBAC): the footprint benchmark reads the
                # live heap after a GC (bench/footprint_bench.py), not only the RSS
                "--profiling=true",
                "--v=1",
            ]

        self._start_with_retry("kube-apiserver", argv, lambda: self._readyz(state), state, deadline)

    def _write_kubeconfigs(self, state: State) -> None:
        server, ca = self.server(state), self._pki / "ca.crt"
        clients = ("kubelet-client", "kube-proxy", "kube-router") if state.node else ()
        for name in ("admin", "controller-manager", "scheduler", *clients):
            target = self.kubeconfig if name == "admin" else self.dir / f"{name}.kubeconfig"
            kubeconfig.write(target, server=server, ca=ca, client=_pair(self._pki, name))

    def _start_controllers(self, state: State, bins: Path) -> None:
        pki = self._pki
        kcm_port, sched_port = process.free_port(), process.free_port()
        state.ports.update(controller_manager=kcm_port, scheduler=sched_port)
        argvs = {
            "kube-controller-manager": [
                str(bins / "kube-controller-manager"),
                f"--kubeconfig={self.dir / 'controller-manager.kubeconfig'}",
                f"--authentication-kubeconfig={self.dir / 'controller-manager.kubeconfig'}",
                f"--authorization-kubeconfig={self.dir / 'controller-manager.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={node.SERVICE_CIDR}",
                "--controllers=*",
                "--enable-hostpath-provisioner=true",
                "--pvclaimbinder-sync-period=2s",
                "--resource-quota-sync-period=5s",  # count newly installed CRDs quickly
                "--v=1",
            ],
            "kube-scheduler": [
                str(bins / "kube-scheduler"),
                f"--kubeconfig={self.dir / 'scheduler.kubeconfig'}",
                f"--authentication-kubeconfig={self.dir / 'scheduler.kubeconfig'}",
                f"--authorization-kubeconfig={self.dir / 'scheduler.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                "--leader-elect=false",
                "--v=1",
            ],
            "kwok": [
                str(bins / "kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={bins / 'kwok-stages.yaml'}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.0.0.1",
                "--node-lease-duration-seconds=40",
            ],
        }
        for name, argv in argvs.items():
            self._spawn(state, name, argv)

    def _start_node(self, state: State, bins: Path, deadline: float) -> None:
        """containerd (then the images), kubelet, kube-proxy and the volume provisioner."""
        paths = node.NodePaths(self.dir / "node")
        node.write_configs(paths, self._pki, self.dir / "kube-proxy.kubeconfig")
        argvs = node.argvs(
            paths, bins, self.dir / "kubelet-client.kubeconfig", self.dir / "kube-router.kubeconfig"
        )
        argvs["provisioner"] = [
            sys.executable,
            *("-m", "tenantflow_dev.devcluster.provisioner"),
            *(f"--kubeconfig={self.kubeconfig}", f"--root={self.volumes}"),
        ]
        self._spawn(state, "containerd", argvs["containerd"])
        _wait("containerd", lambda: node.runtime_ready(paths), deadline, self._diagnose)
        node.import_images(paths)
        for name in ("kubelet", "kube-proxy", "kube-router", "provisioner"):
            self._spawn(state, name, argvs[name])
        state.save(self._state_file)

    def _spawn(self, state: State, name: str, argv: list[str]) -> None:
        state.argv[name] = argv
        state.pids[name] = process.spawn(name, argv, self._logs, self.dir).pid

    def _bootstrap(self, state: State, bins: Path, deadline: float) -> None:
        """Default StorageClass and nodes; ready once nodes are Ready and SAs exist."""
        kubectl = [str(bins / "kubectl"), f"--kubeconfig={self.kubeconfig}"]
        _run([*kubectl, "apply", "-f", "-"], bootstrap.bootstrap(FAKE_NODES, real_node=state.node))
        checks: list[tuple[str, list[str]]] = [
            (
                "nodes Ready",
                [*kubectl, "wait", "--for=condition=Ready", "node", "--all", "--timeout=5s"],
            ),
            (
                "default ServiceAccount",
                [*kubectl, "get", "serviceaccount", "default", "-n", "default"],
            ),
        ]
        for what, argv in checks:
            _wait(what, functools.partial(_succeeds, argv), deadline, self._diagnose)

    # ------------------------------------------------------------------ helpers
    def _start_with_retry(
        self,
        name: str,
        argv: Callable[[], list[str]],
        ready: Callable[[], bool],
        state: State,
        deadline: float,
    ) -> None:
        """Start a component; when it dies because its port was taken, pick new ports."""
        for attempt in range(1, _PORT_RETRIES + 1):
            state.argv[name] = argv()
            proc = process.spawn(name, state.argv[name], self._logs, self.dir)
            state.pids[name] = proc.pid
            state.save(self._state_file)
            while time.monotonic() < deadline:
                if ready():
                    return
                if proc.poll() is not None:
                    break
                time.sleep(0.2)
            else:
                raise DevClusterError(f"{name} did not become ready in time.\n{self._diagnose()}")
            tail = process.log_tail(self._logs / f"{name}.log")
            if "address already in use" in tail and attempt < _PORT_RETRIES:
                log.warning("port taken, retrying with another", component=name)
                continue
            raise DevClusterError(f"{name} exited during start-up; last log lines:\n{tail}")

    def _readyz(self, state: State) -> bool:
        ctx = ssl.create_default_context(cafile=str(self._pki / "ca.crt"))
        admin = _pair(self._pki, "admin")
        try:
            ctx.load_cert_chain(str(admin.cert), str(admin.key))
        except OSError:
            return False
        return _http_ok(f"{self.server(state)}/readyz", ctx)

    def _diagnose(self) -> str:
        """Which components died, with their last log lines: the first thing a user needs."""
        state = State.load(self._state_file) or State()
        parts = []
        for c in COMPONENTS:
            alive = process.is_ours(state.pids.get(c, -1), self.dir)
            if not alive:
                parts.append(
                    f"--- {c} is not running; {self._logs / (c + '.log')}:\n"
                    f"{process.log_tail(self._logs / f'{c}.log')}"
                )
        return "\n".join(parts) or f"all components alive; logs in {self._logs}"


def _want_node() -> bool:
    """TENANTFLOW_NODE=real|none; by default a real node wherever this machine can run one."""
    choice = os.environ.get("TENANTFLOW_NODE", "auto")
    if choice not in ("auto", "real", "none"):
        raise DevClusterError(f"TENANTFLOW_NODE={choice!r}: use real, none or auto")
    why_not = node.supported()
    if choice == "real" and why_not:
        raise DevClusterError(f"TENANTFLOW_NODE=real, but {why_not}")
    if choice == "auto" and why_not:
        log.warning("no real node: pods will not run (kwok nodes only)", reason=why_not)
    return choice != "none" and why_not is None


def _pair(pki: Path, name: str) -> KeyPair:
    return KeyPair(pki / f"{name}.crt", pki / f"{name}.key")


def _http_ok(url: str, ctx: ssl.SSLContext | None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _run(argv: list[str], stdin: str) -> None:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        raise DevClusterError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")


def _succeeds(argv: list[str]) -> bool:
    return subprocess.run(argv, capture_output=True).returncode == 0


def _wait(
    what: str, check: Callable[[], bool], deadline: float, diagnose: Callable[[], str]
) -> None:
    while not check():
        if time.monotonic() > deadline:
            raise DevClusterError(f"timed out waiting for {what}.\n{diagnose()}")
        time.sleep(0.5)
