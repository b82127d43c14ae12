"""Start, find and stop the control-plane processes.

Every process we start has the cluster's data directory in its command line (certificates,
kubeconfigs, data), so processes left behind by a crashed run are found by scanning /proc
for that path even when the pid files are gone, and a recycled pid is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tenantflow.errors import DevClusterError


def free_port() -> int:
    """A loopback port free right now (the caller retries if another process wins the race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def owned_pids(marker: Path) -> list[int]:
    """Pids of live processes whose command line mentions `marker` (our data directory)."""
    needle = f"{marker}/"
    me = os.getpid()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != me and needle in _cmdline(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def is_ours(pid: int, marker: Path) -> bool:
    """True when `pid` is alive and is one of the processes started for `marker`."""
    return f"{marker}/" in _cmdline(pid)


def spawn(name: str, argv: list[str], logdir: Path, marker: Path) -> subprocess.Popen[bytes]:
    """Start `argv` detached (own session, survives the CLI), logging to `<logdir>/<name>.log`.

    The returned Popen is the authoritative liveness check while this process waits for
    start-up; /proc scans are for processes started by an earlier invocation.
    """
    logdir.mkdir(parents=True, exist_ok=True)
    with open(logdir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=marker,
        )
    # With vfork, Popen can return while the kernel is still inside execve and
    # /proc/<pid>/cmdline is briefly empty: wait for it so later scans see the marker.
    deadline = time.monotonic() + 2.0
    while not _cmdline(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    (marker / f"{name}.pid").write_text(str(proc.pid))
    return proc


def stop(pids: list[int], marker: Path, timeout: float = 10.0) -> None:
    """SIGTERM our processes, then SIGKILL whatever is still alive after `timeout`."""
    live = [p for p in pids if is_ours(p, marker)]
    for pid in live:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        _reap(live)
        live = [p for p in live if is_ours(p, marker)]
        if live:
            time.sleep(0.1)
    for pid in live:
        _signal(pid, signal.SIGKILL)
    _reap(live)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise DevClusterError(f"cannot stop pid {pid}: {exc}") from exc


def _reap(pids: list[int]) -> None:
    """Collect zombies of children we started in this process, so they stop looking alive."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def log_tail(path: Path, lines: int = 25) -> str:
    """The last lines of a component log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
