"""Local sandboxes: one runner process per tenant on a unix socket, jailed with bubblewrap.

For the demo and CI, where kwok pods do not execute. The jail has new user, pid, ipc and
network namespaces (no network at all), a read-only view of only what Python needs, an
empty /tmp, and exactly one writable directory: the tenant's data dir, which is the
directory behind the tenant's bound PersistentVolume.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import tenantflow
from tenantflow.devcluster.versions import cache_dir
from tenantflow.errors import TenantflowError
from tenantflow.observability.logging import get_logger
from tenantflow.sandbox.transport import Endpoint

log = get_logger("tenantflow.sandbox.local")
JAIL_UID = 10001
MAX_PIDS = 256
CGROUP_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))  # cgroup v1, then v2


class LocalSandboxError(TenantflowError):
    pass


@dataclass
class _Runner:
    proc: subprocess.Popen[bytes]
    socket: Path
    data_dir: str
    key: bytes


def _python_roots() -> list[str]:
    """Read-only paths the jailed interpreter needs: stdlib, venv, our package."""
    roots = {sys.base_prefix, sys.prefix, str(Path(tenantflow.__file__).resolve().parents[1])}
    return sorted(r for r in roots if os.path.exists(r))


def jail_argv(data_dir: str, socket_dir: str) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise LocalSandboxError(
            "bubblewrap (bwrap) is not installed: run "
            "`make sysdeps` or `apt-get install bubblewrap`"
        )
    argv = [
        bwrap,
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
        "--new-session",
        "--uid",
        str(JAIL_UID),
        "--gid",
        str(JAIL_UID),
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]
    for ro in (
        "/usr",
        "/lib",
        "/lib64",
        "/bin",
        "/etc/ssl",
        "/etc/localtime",
        "/etc/alternatives",
        *_python_roots(),
    ):
        if os.path.exists(ro):
            argv += ["--ro-bind", ro, ro]
    argv += [
        "--bind",
        data_dir,
        data_dir,
        "--bind",
        socket_dir,
        socket_dir,
        "--remount-ro",
        "/",
        "--chdir",
        data_dir,
    ]
    return argv


def pids_cgroup(tenant: str) -> Path | None:
    """A pids cgroup capping the tenant's runner and everything it forks (fork bombs).

    RLIMIT_NPROC cannot do this here: the jail's processes are root outside the user
    namespace, and root is exempt. Returns None where cgroups are not writable.
    """
    for root in CGROUP_ROOTS:
        if not (root / "cgroup.procs").exists() or not os.access(root, os.W_OK):
            continue
        group = root / f"tenantflow-{tenant}"
        try:
            group.mkdir(exist_ok=True)
            (group / "pids.max").write_text(str(MAX_PIDS))
        except OSError:
            continue
        return group
    log.warning(
        "no writable pids cgroup: fork bombs in local sandboxes are not contained", tenant=tenant
    )
    return None


class LocalSandboxes:
    def __init__(
        self, root: Path | None = None, *, workers: int = 2, request_timeout: float = 300.0
    ) -> None:
        self.root = root or cache_dir() / "sandboxes"
        self.workers = workers
        self.request_timeout = request_timeout
        self._runners: dict[str, _Runner] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def endpoint(self, tenant: str, data_dir: str, key: bytes) -> Endpoint:
        """The tenant's runner endpoint, (re)starting the runner when needed."""
        lock = self._locks.setdefault(tenant, asyncio.Lock())
        async with lock:
            r = self._runners.get(tenant)
            if r is None or r.proc.poll() is not None or r.data_dir != data_dir or r.key != key:
                if r is not None:
                    self._stop(r)
                r = self._runners[tenant] = await self._start(tenant, data_dir, key)
            return Endpoint(key=key, socket=str(r.socket))

    async def _start(self, tenant: str, data_dir: str, key: bytes) -> _Runner:
        sock_dir = self.root / tenant
        sock_dir.mkdir(parents=True, exist_ok=True)
        sock = sock_dir / "runner.sock"
        sock.unlink(missing_ok=True)
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        # no chown: inside the user namespace our own uid *is* the jail uid
        argv = [
            *jail_argv(data_dir, str(sock_dir)),
            sys.executable,
            "-m",
            "tenantflow.sandbox.runner",
            "--data",
            data_dir,
            "--tenant",
            tenant,
            "--socket",
            str(sock),
            "--workers",
            str(self.workers),
            "--key-stdin",
            "--reap-strays",
            "--request-timeout",
            str(self.request_timeout),
        ]
        group = pids_cgroup(tenant)
        if group is None:
            raise LocalSandboxError(
                "no writable pids cgroup to contain the sandbox (fork bombs would reach the "
                "host); run the operator as root on a host with cgroups, or use the cluster "
                "transport"
            )
        # join the cgroup first, then become the jail
        argv = ["/bin/sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh", *argv]
        # the key goes through stdin: never in any environment (/proc/*/environ is readable)
        env = {
            "PATH": "/usr/bin:/bin",
            "TENANTFLOW_LOG_FORMAT": "json",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        with open(sock_dir / "runner.log", "ab") as log_file:
            proc = subprocess.Popen(
                argv, env=env, stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT
            )
        assert proc.stdin is not None
        proc.stdin.write(key + b"\n")
        proc.stdin.close()
        for _ in range(300):
            if sock.exists():
                log.info("sandbox started", tenant=tenant, pid=proc.pid, data=data_dir)
                return _Runner(proc, sock, data_dir, key)
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        tail = (sock_dir / "runner.log").read_text(errors="replace")[-2000:]
        self._stop(_Runner(proc, sock, data_dir, key))
        raise LocalSandboxError(f"the sandbox runner for {tenant} did not start:\n{tail}")

    @staticmethod
    def _stop(r: _Runner) -> None:
        if r.proc.poll() is None:
            r.proc.terminate()
            try:
                r.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                r.proc.kill()

    def stop_all(self) -> None:
        for r in self._runners.values():
            self._stop(r)
        self._runners.clear()
