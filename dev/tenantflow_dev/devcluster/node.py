"""A real worker node for the dev cluster: containerd + runc + CNI, kubelet and kube-proxy.

Pods run for real on this machine (images built by `images.py`, imported, never pulled).
What the node changes on the host is small, named and undone by `teardown`:

- a bridge `tf-node0` holding the node IP (10.246.0.1/32): kubelet refuses a loopback node
  IP and this kernel has no dummy links; the API server listens there so pods reach it;
- the CNI bridge `tf-pods0` for the pod network 10.245.0.0/24; pods get routes to the pod,
  service and node ranges only, never a default route, and a FORWARD chain drops anything
  between the pod range and the host's external interfaces;
- kube-proxy's iptables chains (its own `--cleanup` removes them) and the NetworkPolicy
  enforcer's nftables table;
- `kubepods` cgroups, and mounts under the cluster directory (kubelet's root, containerd's
  state), all removed on teardown. Containerd's and kubelet's state live in the cluster
  directory, so every process of the node names it and `down` finds them all.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from tenantflow.errors import DevClusterError
from tenantflow.observability.logging import get_logger
from tenantflow_dev.devcluster import images
from tenantflow_dev.devcluster.process import free_port

log = get_logger("tenantflow_dev.devcluster.node")

COMPONENTS = ("containerd", "kubelet", "kube-proxy", "kube-router", "provisioner")  # start order
NODE_NAME = "tenantflow-node"
NODE_IP = "10.246.0.1"
NODE_BRIDGE = "tf-node0"
POD_BRIDGE = "tf-pods0"
POD_CIDR = "10.245.0.0/24"
POD_GATEWAY = "10.245.0.1"
HOST_RANGE = "10.246.0.0/16"  # the node IP and addresses tests add for egress checks
SERVICE_CIDR = "10.96.0.0/16"  # the API server's and kube-proxy's service range
FORWARD_CHAIN = "TENANTFLOW-NODE"
# the guard lives in the mangle table, which runs before filter's FORWARD: kube-router and
# kube-proxy insert their own jumps (some of which ACCEPT) at the top of filter's FORWARD
GUARD = ("iptables", "-w", "-t", "mangle")
ROUTER_USER = "tenantflow:kube-router"  # its client certificate's name, bound read-only
CNI_BIN = "/usr/lib/cni"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
CONTAINERD_NS = "k8s.io"
NODE_IMAGES = ("pause", "operator", "sandbox", "sandbox-example")
PACKAGES = {  # binary -> Debian package, for a clear message when one is missing
    "containerd": "containerd",
    "runc": "runc",
    "ctr": "containerd",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "ip": "iproute2",
    "ipset": "ipset",
}


def missing_packages() -> list[str]:
    found = [pkg for binary, pkg in PACKAGES.items() if shutil.which(binary) is None]
    if not Path(CNI_BIN, "bridge").is_file():
        found.append("containernetworking-plugins")
    return sorted(set(found))


def supported() -> str | None:
    """Why this machine cannot run the node, or None when it can."""
    if os.geteuid() != 0:
        return "the node needs root (it creates network links, mounts and cgroups)"
    if missing := missing_packages():
        return f"missing Debian packages {', '.join(missing)}: run `make sysdeps`"
    return None


@dataclass(frozen=True)
class NodePaths:
    """Everything the node writes, under the cluster directory."""

    root: Path

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd.toml"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet.yaml"

    @property
    def kube_proxy_config(self) -> Path:
        return self.root / "kube-proxy.yaml"

    @property
    def cni_conf(self) -> Path:
        return self.root / "cni"


# ---------------------------------------------------------------------------- network
def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _cmd(["ip", *args], check=check)


def _cmd(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise DevClusterError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")
    return result


def external_interfaces() -> list[str]:
    """Interfaces that carry a default route: what pods must never reach."""
    routes = json.loads(_ip("-j", "route", "show", "default").stdout or "[]")
    return sorted({r["dev"] for r in routes if "dev" in r})


def setup_network(root: Path) -> None:
    """The node IP on its own bridge, and the FORWARD guard; idempotent.

    The pod, service and node ranges are routed into the empty node bridge, so a packet to
    one of them that no rule claims (a service IP before kube-proxy has programmed it)
    goes nowhere instead of out of the default route.
    """
    root.mkdir(parents=True, exist_ok=True)
    saved = root / "ip_forward"
    if not saved.exists():
        saved.write_text(IP_FORWARD.read_text())
    if _ip("link", "show", NODE_BRIDGE, check=False).returncode != 0:
        _ip("link", "add", NODE_BRIDGE, "type", "bridge")
    _ip("addr", "replace", f"{NODE_IP}/32", "dev", NODE_BRIDGE)
    _ip("link", "set", NODE_BRIDGE, "up")
    for cidr in _contained_ranges():
        _ip("route", "replace", cidr, "dev", NODE_BRIDGE)
    _cmd([*GUARD, "-N", FORWARD_CHAIN], check=False)
    _cmd([*GUARD, "-F", FORWARD_CHAIN])
    for dev in external_interfaces():
        for direction in (["-s", POD_CIDR, "-o", dev], ["-d", POD_CIDR, "-i", dev]):
            _cmd([*GUARD, "-A", FORWARD_CHAIN, *direction, "-j", "DROP"])
    jump = ["FORWARD", "-j", FORWARD_CHAIN]
    if _cmd([*GUARD, "-C", *jump], check=False).returncode != 0:
        _cmd([*GUARD, "-I", *jump])


def teardown_network(root: Path) -> None:
    _cmd([*GUARD, "-D", "FORWARD", "-j", FORWARD_CHAIN], check=False)
    _cmd([*GUARD, "-F", FORWARD_CHAIN], check=False)
    _cmd([*GUARD, "-X", FORWARD_CHAIN], check=False)
    for binary in ("iptables", "ip6tables"):
        remove_kube_chains(binary)
    for link in (POD_BRIDGE, NODE_BRIDGE):  # their routes go with them
        _ip("link", "del", link, check=False)
    remove_kube_ipsets()  # kube-router's, once no rule refers to them
    saved = root / "ip_forward"
    if saved.exists():  # the CNI bridge plugin turned forwarding on
        IP_FORWARD.write_text(saved.read_text())


def remove_kube_chains(binary: str, prefix: str = "KUBE-") -> None:
    """The chains kubelet, kube-proxy and kube-router leave behind (named `prefix`...), and
    the rules jumping there."""
    for table in ("filter", "nat", "mangle"):
        rules = _cmd([binary, "-w", "-t", table, "-S"], check=False).stdout.splitlines()
        for rule in rules:
            words = shlex.split(rule)  # rules carry quoted comments
            if words[:1] == ["-A"] and not words[1].startswith(prefix) and prefix in rule:
                _cmd([binary, "-w", "-t", table, "-D", *words[1:]], check=False)
        chains = [r.split()[1] for r in rules if r.startswith(f"-N {prefix}")]
        for chain in chains:
            _cmd([binary, "-w", "-t", table, "-F", chain], check=False)
        for chain in chains:
            _cmd([binary, "-w", "-t", table, "-X", chain], check=False)


def remove_kube_ipsets() -> None:
    """kube-router's `--cleanup-config` panics here (no ip_vs): remove its sets ourselves."""
    names = _cmd(["ipset", "list", "-n"], check=False).stdout.split()
    for name in names:
        if name.startswith(("KUBE-", "kube-router")):
            _cmd(["ipset", "destroy", name], check=False)


def _contained_ranges() -> tuple[str, ...]:
    return (str(ipaddress.ip_network(POD_CIDR).supernet(8)), SERVICE_CIDR, HOST_RANGE)


def pod_routes() -> list[dict[str, str]]:
    """Pod range, service range, node range: no default route, so nothing leaves."""
    return [{"dst": c} for c in _contained_ranges()]


# ---------------------------------------------------------------------------- configs
def write_configs(paths: NodePaths, pki: Path, proxy_kubeconfig: Path) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.cni_conf.mkdir(exist_ok=True)
    paths.containerd_config.write_text(containerd_config(paths))
    (paths.cni_conf / "10-tenantflow.conflist").write_text(json.dumps(cni_config(paths), indent=2))
    paths.kubelet_config.write_text(yaml.safe_dump(kubelet_config(paths, pki)))
    paths.kube_proxy_config.write_text(yaml.safe_dump(kube_proxy_config(proxy_kubeconfig)))


def containerd_config(paths: NodePaths) -> str:
    root = paths.root / "containerd"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{root / "root"}"
state = "{root / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{paths.containerd_socket}"

[ttrpc]
  address = "{paths.containerd_socket}.ttrpc"

[{cri}]
  sandbox_image = "{images.ref("pause")}"
  # the VM withholds CAP_SYS_RESOURCE even from root: runc cannot set the negative
  # oom_score_adj the kubelet asks for
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{root / "runc"}"
  [{cri}.cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{paths.cni_conf}"
"""


def cni_config(paths: NodePaths) -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": "tenantflow-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": POD_BRIDGE,
                "isGateway": True,
                "ipMasq": False,  # nothing leaves the machine, so nothing to masquerade
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                    "routes": pod_routes(),
                    "dataDir": str(paths.root / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(paths: NodePaths, pki: Path) -> dict[str, object]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # this host has cgroup v1 hierarchies only
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "address": NODE_IP,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 0,
        "tlsCertFile": str(pki / "kubelet.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "AlwaysAllow"},  # only the API server holds a client cert
        "failSwapOn": False,
        "resolvConf": "",
        "clusterDomain": "cluster.local",
        "serializeImagePulls": False,
        # images cannot be pulled again here: never garbage-collect them, and never evict
        # pods because a developer's disk is 90 % full
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "maxPods": 110,
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "0s",
        "podPidsLimit": 1024,
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(kubeconfig: Path) -> dict[str, object]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "bindAddress": NODE_IP,
        "healthzBindAddress": f"127.0.0.1:{free_port()}",
        "metricsBindAddress": f"127.0.0.1:{free_port()}",
        "nodePortAddresses": [f"{NODE_IP}/32"],
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": None, "tcpCloseWaitTimeout": None},
    }


def argvs(
    paths: NodePaths, bins: Path, kubelet_kubeconfig: Path, router_kubeconfig: Path
) -> dict[str, list[str]]:
    return {
        "containerd": ["containerd", f"--config={paths.containerd_config}", "--log-level=warn"],
        "kubelet": [
            str(bins / "kubelet"),
            f"--config={paths.kubelet_config}",
            f"--kubeconfig={kubelet_kubeconfig}",
            f"--root-dir={paths.root / 'kubelet'}",
            f"--cert-dir={paths.root / 'kubelet-pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            "--node-labels=tenantflow.dev/node=real",
            "--v=1",
        ],
        "kube-proxy": [str(bins / "kube-proxy"), f"--config={paths.kube_proxy_config}", "--v=1"],
        # NetworkPolicy only: pod routes come from the CNI bridge, services from kube-proxy
        "kube-router": [
            str(bins / "kube-router"),
            f"--kubeconfig={router_kubeconfig}",
            f"--hostname-override={NODE_NAME}",
            *("--run-firewall=true", "--run-router=false", "--run-service-proxy=false"),
            *("--enable-cni=false", "--health-port=0", "--metrics-port=0", "--v=1"),
        ],
    }


def router_rbac() -> list[dict[str, object]]:
    """What kube-router's NetworkPolicy controller reads; it writes nothing."""
    rbac = "rbac.authorization.k8s.io"
    reads = ["get", "list", "watch"]
    return [
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "tenantflow-kube-router"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods", "namespaces", "nodes", "services", "endpoints"],
                    "verbs": reads,
                },
                {
                    "apiGroups": ["networking.k8s.io"],
                    "resources": ["networkpolicies"],
                    "verbs": reads,
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": reads,
                },
            ],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "tenantflow-kube-router"},
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": "tenantflow-kube-router"},
            "subjects": [{"apiGroup": rbac, "kind": "User", "name": ROUTER_USER}],
        },
    ]


def _ctr(paths: NodePaths) -> list[str]:
    return ["ctr", f"--address={paths.containerd_socket}", f"--namespace={CONTAINERD_NS}"]


def runtime_ready(paths: NodePaths) -> bool:
    return _cmd([*_ctr(paths), "version"], check=False).returncode == 0


def import_images(paths: NodePaths) -> list[images.Image]:
    """Build (or reuse) the node's images and import them into containerd's k8s.io store."""
    built = images.build(NODE_IMAGES)
    import_archives(paths, built)
    return built


def import_archives(paths: NodePaths, built: list[images.Image]) -> None:
    """Import built images into containerd's k8s.io store, skipping those it holds already
    under the same reference and digest (also the images of another release: previous.py)."""
    ctr = _ctr(paths)
    present = {}  # ref -> digest held by containerd
    for line in _cmd([*ctr, "images", "ls"]).stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3:
            present[fields[0]] = fields[2]
    for image in built:
        if present.get(image.ref) == image.digest:
            continue
        log.info("importing image into the node", image=image.ref)
        _cmd([*ctr, "images", "import", "--no-unpack=false", str(image.archive)])


# ---------------------------------------------------------------------------- teardown
def kill_pods() -> None:
    """SIGKILL every process in the kubelet's pod cgroups (containers outlive their shims)."""
    for procs in Path("/sys/fs/cgroup/pids/kubepods").rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)


def remove_cgroups() -> None:
    """The `kubepods` trees the kubelet made in every hierarchy, deepest first."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / "kubepods"
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def unmount_under(root: Path) -> None:
    """Detach every mount below `root` (kubelet's volumes, containerd's rootfs and netns)."""
    prefix = f"{root}/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point.startswith(prefix) or point == str(root):
            points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        _cmd(["umount", "-l", point], check=False)


def cleanup_proxy(bins: Path) -> None:
    if (bins / "kube-proxy").is_file():
        _cmd([str(bins / "kube-proxy"), "--cleanup"], check=False)


def teardown(root: Path, bins: Path) -> None:
    """Undo the node after its processes were stopped: pods, mounts, cgroups, network."""
    kill_pods()
    unmount_under(root)
    remove_cgroups()
    cleanup_proxy(bins)
    teardown_network(root)
