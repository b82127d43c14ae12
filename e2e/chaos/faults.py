"""Process-level faults for the chaos run: each is a real kill or restart, never a simulation."""

from __future__ import annotations

import os
import random
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tenantflow_dev.devcluster import DevCluster
from tenantflow_dev.devcluster.operator_process import OperatorProcess


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) for every process we can see."""
    out: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out[int(entry.name)] = (ppid, cmdline)
    return out


def _tenant_of(cmdline: str) -> str | None:
    argv = cmdline.split()
    return argv[argv.index("--tenant") + 1] if "--tenant" in argv[:-1] else None


def sandbox_workers(tenant: str) -> list[int]:
    """Advance children of the tenant's sandbox: the zygote's forks running tenant code
    (a local jail's or a pod's: the host sees both)."""
    procs = processes()
    zygotes = {
        pid
        for pid, (ppid, cmd) in procs.items()
        if "tenantflow.sandbox.pod.zygote" in cmd
        and _tenant_of(cmd) == tenant
        and "tenantflow.sandbox.pod.zygote" not in procs.get(ppid, (0, ""))[1]
    }
    return [pid for pid, (ppid, _) in procs.items() if ppid in zygotes]


def _kill(pids: list[int]) -> int:
    killed = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


def kill_workers(tenant: str) -> int:
    return _kill(sandbox_workers(tenant))


def kill_runners(tenant: str) -> int:
    """The runner and the zygote (local: the host process and the jail; pod: both
    containers' main processes, which the kubelet restarts)."""
    return _kill(
        [
            pid
            for pid, (_, cmd) in processes().items()
            if _tenant_of(cmd) == tenant
            and ("tenantflow.sandbox.pod.runner" in cmd or "tenantflow.sandbox.pod.zygote" in cmd)
        ]
    )


def delete_sandbox_pod(namespace: str) -> None:
    """The pod itself, as a node drain or an eviction would: the StatefulSet makes a new one."""
    cluster = DevCluster()
    subprocess.run(
        [
            str(Path(cluster.env()["PATH"].split(":")[0]) / "kubectl"),
            f"--kubeconfig={cluster.kubeconfig}",
            *("-n", namespace, "delete", "pod", "sandbox-0", "--wait=false"),
        ],
        check=False,
        capture_output=True,
    )


@dataclass
class Injector:
    operator: OperatorProcess
    cluster: DevCluster
    tenant: str

    def catalogue(self) -> dict[str, Callable[[], object]]:
        faults: dict[str, Callable[[], object]] = {
            "operator SIGKILL": lambda: (self.operator.kill(), self.operator.start()),
            "kube-apiserver restart": lambda: self.cluster.restart("kube-apiserver"),
            "etcd restart": lambda: self.cluster.restart("etcd"),
            "sandbox runner killed": lambda: kill_runners(self.tenant),
            "sandbox workers killed": lambda: kill_workers(self.tenant),
        }
        if self.cluster.has_node():  # the node's own faults, where pods run for real
            faults.update(
                {
                    "sandbox pod deleted": lambda: delete_sandbox_pod(f"tenant-{self.tenant}"),
                    "kubelet restart": lambda: self.cluster.restart("kubelet"),
                    "containerd restart": lambda: self.cluster.restart("containerd"),
                }
            )
        return faults

    def random(self, rng: random.Random) -> str:
        """Inject one fault chosen at random; the name says which."""
        name, inject = rng.choice(sorted(self.catalogue().items()))
        inject()
        return name
