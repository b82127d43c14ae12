"""Process-level faults for the chaos run: each is a real kill or restart, never a simulation."""

from __future__ import annotations

import os
import random
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tenantflow.devcluster import DevCluster
from tenantflow.devcluster.operator import OperatorProcess


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


def sandbox_workers(data_dir: Path) -> list[int]:
    """Advance children of the tenant's sandbox: the zygote's forks running tenant code."""
    procs = processes()
    zygotes = {
        pid
        for pid, (ppid, cmd) in procs.items()
        if "tenantflow.sandbox.zygote" in cmd
        and str(data_dir) in cmd
        and "tenantflow.sandbox.zygote" not in procs.get(ppid, (0, ""))[1]
    }
    return [pid for pid, (ppid, _) in procs.items() if ppid in zygotes]


def kill_workers(data_dir: Path) -> int:
    killed = 0
    for pid in sandbox_workers(data_dir):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


def kill_runners(data_dir: Path) -> None:
    """The runner (it holds the key, outside the jail) and the jail with its zygote."""
    for pattern in (f"tenantflow.sandbox.runner.*{data_dir}", f"bwrap.*{data_dir}"):
        subprocess.run(["pkill", "-9", "-f", pattern], check=False)


@dataclass
class Injector:
    operator: OperatorProcess
    cluster: DevCluster
    data_dir: Path

    def catalogue(self) -> dict[str, Callable[[], object]]:
        return {
            "operator SIGKILL": lambda: (self.operator.kill(), self.operator.start()),
            "kube-apiserver restart": lambda: self.cluster.restart("kube-apiserver"),
            "etcd restart": lambda: self.cluster.restart("etcd"),
            "sandbox runner killed": lambda: kill_runners(self.data_dir),
            "sandbox workers killed": lambda: kill_workers(self.data_dir),
        }

    def random(self, rng: random.Random) -> str:
        """Inject one fault chosen at random; the name says which."""
        name, inject = rng.choice(sorted(self.catalogue().items()))
        inject()
        return name
