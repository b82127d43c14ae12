"""The worker host inside a tenant's sandbox: one fresh child per advance, and a reaper.

    python -I -m tenantflow.sandbox.pod.zygote --data DIR --tenant T
        (--listen @NAME --runner-uid UID | --fd N)

It runs where tenant code runs (the sandbox pod's `worker` container, or the local jail)
and holds nothing secret: no key, no credentials. Each connection carries one JSON frame,
`{"op": "advance", "budget": seconds}` (then the payload, a frame the zygote leaves
unread: `payload.advance_request`) or `{"op": "ping"}`. For an advance it hands the
connection to a child forked ahead of time (`worker.spare_main`, forked again right after,
so fork() is not on the request's path; `worker.child_main` when no spare is ready) that
answers on the same connection and exits; the zygote kills the
child's process group at its deadline, and kills every other process that ends up as its
child (a detached grandchild is re-parented here: the zygote is a child subreaper), so
nothing of an advance outlives it. The zygote is not dumpable, so tenant code running as
the same uid cannot ptrace it or read its memory.

Connections come from a listening abstract unix socket (pod: the containers share the
network namespace; only the runner's uid is served) or as file descriptors passed over an
inherited control socket (local jail: no path is shared with the host at all). Requests
are read without blocking, each by its own deadline: a half-sent one stalls nothing else.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import ctypes
import json
import os
import select
import selectors
import signal
import socket
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenantflow.sandbox.pod import seccomp, worker
from tenantflow.sandbox.protocol import frames
from tenantflow.sandbox.protocol.payload import ADVANCE_OP, MAX_BUDGET_SECONDS

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
REQUEST_READ_TIMEOUT = 10.0
FORK_ATTEMPTS = 20
HAND_OVER_TIMEOUT = 1.0  # seconds to give a spare its advance
# the serve loop's tick (the reaper's period): while advances run or requests are read, and
# for QUIET_AFTER seconds after the last advance ended (what it left behind is looked for
# at once); else IDLE_TICK, so that an idle sandbox costs next to no CPU
TICK = 0.05
IDLE_TICK = 0.5
QUIET_AFTER = 2.0
# processes one advance may hold at once, itself included; the pod's pids limit and the
# local jail's pids cgroup cap the whole sandbox, this keeps room in them for the others
MAX_ADVANCE_PROCESSES = 64


def harden_self() -> None:
    """Not dumpable (no ptrace, no /proc/self/mem for same-uid processes); subreaper."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def die_with_parent() -> None:
    """SIGKILL when the parent exits (and at once if it already has)."""
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


class Zygote:
    def __init__(
        self, data_dir: str, tenant: str, memory_bytes: int, secrets_dir: str | None = None
    ) -> None:
        self.children: dict[int, Child] = {}  # the advances running now, by pid
        self.quiet_at = 0.0  # the serve loop ticks fast until then (`tick`)
        self.spare: Spare | None = None  # the next advance's child, forked ahead
        self.listener: Listener | None = None  # the pod's way in (its refusals are counted)
        self.box = worker.Sandbox(data_dir, tenant, memory_bytes, seccomp.Filter(), secrets_dir)
        self.oom = OomCounter()
        with tempfile.TemporaryDirectory() as scratch:
            worker.warm_up(scratch)

    # ------------------------------------------------------------------ connections
    def handle(self, conn: socket.socket, request: Any) -> None:
        """Answer one connection's request (or fork a child to)."""
        try:
            op = request.get("op") if isinstance(request, dict) else None
            budget = _budget(request)
            if op == "ping":
                frames.send(
                    conn,
                    {
                        "ok": True,
                        "children": len(self.children),
                        "spare": self.spare.pid if self.spare else None,
                        "refused": self.listener.refused if self.listener else 0,
                    },
                )
            elif op == ADVANCE_OP and budget is not None:
                self._advance(conn, budget)
            elif op == ADVANCE_OP:
                why = f"budget must be a number of seconds up to {MAX_BUDGET_SECONDS:.0f}"
                frames.send(conn, {"error": why})
            else:
                frames.send(conn, {"error": "unknown request"})
        except OSError:
            pass
        except Exception as exc:  # a bug here must not take the worker host down
            _log("request failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    def _advance(self, conn: socket.socket, budget: float) -> None:
        oom_before = self.oom.kills()
        pid = self._hand_to_spare(conn)
        if pid is None:
            pid = self._fork()
            if pid == 0:
                worker.child_main(conn, self.box)
        # our copy of the connection: to tell the runner why, should the child die silently
        self.children[pid] = Child(time.monotonic() + budget, budget, conn.dup(), oom_before)
        self.ensure_spare()

    def _hand_to_spare(self, conn: socket.socket) -> int | None:
        """The spare's pid once it holds the advance; None without a usable spare."""
        if self.spare is None:
            return None
        self.reap()  # nothing an earlier advance left (a fork bomb's remains) is still there
        spare, self.spare = self.spare, None
        if spare is None:  # the reaper found it dead
            return None
        try:
            # a spare stopped by a neighbour (SIGSTOP) must not block the zygote
            spare.control.settimeout(HAND_OVER_TIMEOUT)
            worker.hand_over(spare.control, conn)
        except (OSError, ValueError):  # it died or hangs (a neighbour's doing): on demand
            _kill_group(spare.pid)
            return None
        finally:
            spare.control.close()
        return spare.pid

    def ensure_spare(self) -> None:
        """Fork the next advance's child now, if there is none. One attempt, and never an
        error: a pids limit still held by a fork bomb's remains (EAGAIN), or a memory limit
        an advance is filling right now (ENOMEM), leaves the next advance to fork on
        demand; the zygote itself must not die of it."""
        if self.spare is not None:
            return
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError:
            return
        try:
            pid = os.fork()
        except OSError as exc:
            ours.close()
            theirs.close()
            if not isinstance(exc, BlockingIOError):
                _log("no spare child", error=f"{type(exc).__name__}: {exc}")
            return
        if pid == 0:
            ours.close()
            worker.spare_main(theirs, self.box)
        theirs.close()
        self.spare = Spare(pid, ours)

    def _fork(self) -> int:
        """fork(), after clearing what earlier advances left; retried while the pids
        limit is still held by processes being killed (a fork bomb's remains)."""
        for attempt in range(FORK_ATTEMPTS):
            self.reap()
            try:
                return os.fork()
            except BlockingIOError:
                time.sleep(0.01 * (attempt + 1))
        return os.fork()

    # ------------------------------------------------------------------ processes
    def reap(self) -> None:
        """Collect exited children; kill overdue, abandoned and crowded advances and every
        stray, each with every process below it."""
        self._collect()
        now = time.monotonic()
        if self.children:
            self.quiet_at = now + QUIET_AFTER
        abandoned = self._abandoned()
        if (
            not abandoned
            and self._only_known()
            and all(now <= child.deadline for child in self.children.values())
        ):
            return  # nothing overdue or abandoned, and no process to look at: no scan
        tree = ProcessTree.scan()
        for pid, child in list(self.children.items()):
            if now > child.deadline:
                child.overdue = True
            elif len(tree.below(pid)) >= MAX_ADVANCE_PROCESSES:
                child.crowded = True  # a fork bomb: it goes before it fills the pids limit
            else:
                continue
            tree.kill(pid)
        for pid in abandoned:
            self.children[pid].abandoned = True
            tree.kill(pid)
        for _ in range(100):  # strays may fork while we kill: until none is left
            strays = self._strays(tree)
            if not strays:
                break
            for pid in strays:
                tree.kill(pid)
            self._collect()
            tree = ProcessTree.scan()

    def tick(self) -> float:
        """Seconds until the serve loop turns again, if nothing comes before."""
        return TICK if time.monotonic() < self.quiet_at else IDLE_TICK

    def _only_known(self) -> bool:
        """Whether the pid namespace holds nothing but its init, this process, the spare
        and the running advances. Then no advance has a process below it (so none is
        crowded) and there is no stray, so `reap` need not read /proc/*/stat: it runs at
        every turn of the serve loop, 20 times a second while advances run. Pid 1 is the
        namespace's init (the zygote itself in a pod, bwrap in the local jail): never a
        process of an advance's."""
        known = {1, os.getpid(), *self.children}
        if self.spare is not None:
            known.add(self.spare.pid)
        try:
            return all(int(e) in known for e in os.listdir("/proc") if e.isdigit())
        except OSError:
            return False

    def _collect(self) -> None:
        """waitpid every exited child; an advance child's group dies with it (a fork bomb
        too), and it leaves `children` at once (its pid may be reused)."""
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and pid == self.spare.pid:  # killed while waiting
                self.spare.control.close()
                self.spare = None
                continue
            child = self.children.pop(pid, None)
            if child is not None:
                _kill_group(pid)
                if status and not child.abandoned:  # (abandoned: answered, or no one asks)
                    _log("advance child ended abnormally", pid=pid, status=_describe(status))
                    with contextlib.suppress(OSError, ValueError):
                        cpu = usage.ru_utime + usage.ru_stime
                        cause = child.cause(status, cpu, self.oom.kills())
                        frames.send(child.conn, {frames.LOST: cause})
                child.conn.close()

    def _abandoned(self) -> list[int]:
        """Advances whose runner hung up (its caller, the operator, went away): no one will
        take their answer, and a new advance of the same instance may already be running.
        The runner sends nothing after its request, so a readable connection means EOF."""
        if not self.children:
            return []
        conns = {child.conn.fileno(): pid for pid, child in self.children.items()}
        readable, _, _ = select.select(list(conns), [], [], 0)
        gone = []
        for fd in readable:
            pid = conns[fd]
            try:
                data = self.children[pid].conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                gone.append(pid)
        return gone

    def _strays(self, tree: ProcessTree) -> list[int]:
        """Children of ours that are not a running advance (re-parented orphans)."""
        spare = self.spare.pid if self.spare else None
        return [p for p in tree.below_me() if p not in self.children and p != spare]


@dataclass
class Spare:
    """A child forked ahead of its advance, waiting on `control` for it."""

    pid: int
    control: socket.socket


@dataclass
class Child:
    """One running advance: when it must end, and the connection its answer goes to."""

    deadline: float  # monotonic
    budget: float
    conn: socket.socket
    oom_before: int | None
    overdue: bool = False
    crowded: bool = False  # it held MAX_ADVANCE_PROCESSES processes at once
    abandoned: bool = False  # its runner hung up (after the answer, or for good)

    def cause(self, status: int, cpu: float = 0.0, oom_after: int | None = None) -> dict[str, str]:
        """Why the child ended without answering, as the runner reports it: the kernel's
        memory limit (`oom_after`: the OOM kill count now), the advance's deadline, its CPU
        allowance (`cpu`: the seconds of CPU it used, all its threads), or another death."""
        how = _describe(status)
        if self.overdue:
            return {
                "name": frames.STEP_TIMEOUT,
                "message": f"the step's process was killed at the advance's deadline "
                f"({self.budget:.0f}s) while running it ({how})",
            }
        if self.crowded:
            return {
                "name": frames.TOO_MANY_PROCESSES,
                "message": f"the step's processes were killed: an advance may hold at most "
                f"{MAX_ADVANCE_PROCESSES - 1} processes besides its own ({how})",
            }
        if self.oom_before is not None and oom_after is not None and oom_after > self.oom_before:
            limit = memory_limit()
            return {
                "name": frames.OUT_OF_MEMORY,
                "message": "the kernel killed the step's process: it exceeded the sandbox's "
                f"memory limit{f' ({limit})' if limit else ''}; use less memory in the step or "
                "raise spec.sandbox.resources.limits.memory of the Tenant",
            }
        allowance = worker.cpu_seconds(self.budget)
        if os.WIFSIGNALED(status) and cpu >= allowance - 0.05:  # RLIMIT_CPU: SIGKILL/SIGXCPU
            return {
                "name": frames.STEP_TIMEOUT,
                "message": f"the step's process used its CPU allowance ({allowance}s of CPU "
                f"across its threads: the advance's deadline and {worker.CPU_SLACK_SECONDS}s) "
                f"before the deadline and was killed ({how}); do less per step, or in fewer "
                "threads at once",
            }
        return {"name": frames.WORKER_KILLED, "message": f"the step's process died ({how})"}


class OomCounter:
    """How many processes the kernel's OOM killer took in this container's memory cgroup
    (v2 memory.events, v1 memory.oom_control), read through one descriptor kept open: it is
    read before every advance, and opening the file each time was on the request's path.
    `kills()` is None where no such file is visible."""

    PATHS: tuple[str, ...] = (
        "/sys/fs/cgroup/memory.events",
        "/sys/fs/cgroup/memory/memory.oom_control",
    )

    def __init__(self) -> None:
        self.fd: int | None = None
        for path in self.PATHS:
            with contextlib.suppress(OSError):
                self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                return

    def kills(self) -> int | None:
        if self.fd is None:
            return None
        with contextlib.suppress(OSError, ValueError):
            for line in os.pread(self.fd, 4096, 0).decode().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return None


def memory_limit() -> str | None:
    """This container's memory limit in the units a Pod spec uses (192Mi), if visible."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            limit = int(Path(path).read_text().split()[0])
            if limit < 1 << 50:
                return f"{limit >> 20}Mi" if limit % (1 << 20) == 0 else f"{limit} bytes"
    return None


def _budget(request: Any) -> float | None:
    """An advance request's budget (payload.advance_request), if it is a usable one."""
    budget = request.get("budget") if isinstance(request, dict) else None
    if not isinstance(budget, (int, float)) or isinstance(budget, bool):
        return None
    return float(budget) if 0 < budget <= MAX_BUDGET_SECONDS else None


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def _log(event: str, **fields: object) -> None:
    """One JSON line on stderr (the runner's log); the zygote keeps no logging machinery."""
    line = json.dumps({"logger": "tenantflow.zygote", "event": event, **fields})
    with contextlib.suppress(OSError):
        os.write(2, line.encode() + b"\n")


def _kill_group(pid: int) -> None:
    """SIGKILL `pid` and the process group it leads: a process that is killed cannot fork
    any more, so one signal to the group reaches every member, however fast it forks."""
    for kill in (os.kill, os.killpg):
        with contextlib.suppress(OSError):
            kill(pid, signal.SIGKILL)


class ProcessTree:
    """Who is whose child, from one pass over /proc (the worker host's pid namespace: only
    its own processes). Zombies are left out: they run nothing and have no children."""

    def __init__(self, children: dict[int, list[int]]) -> None:
        self.children = children

    @classmethod
    def scan(cls) -> ProcessTree:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[-1].split()
            if len(fields) > 1 and fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
        return cls(children)

    def below_me(self) -> list[int]:
        return self.children.get(os.getpid(), [])

    def below(self, pid: int) -> list[int]:
        """Every descendant of `pid` (setsid() does not change whose child a process is)."""
        found, frontier = [], [pid]
        while frontier:
            frontier = [c for p in frontier for c in self.children.get(p, [])]
            found += frontier
        return found

    def kill(self, pid: int) -> None:
        """SIGKILL `pid`, its group and every descendant (those in sessions of their own
        too); what they fork meanwhile dies with them or comes back here as a stray."""
        _kill_group(pid)
        for below in self.below(pid):
            _kill_group(below)


def _receive_fds(control: socket.socket) -> list[socket.socket]:
    """Connections passed as file descriptors over the control socket (local jail)."""
    fds = array.array("i")
    msg, ancdata, _, _ = control.recvmsg(16, socket.CMSG_SPACE(16 * fds.itemsize))
    if not msg:
        raise EOFError("the runner closed the control socket")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return [socket.socket(fileno=fd) for fd in fds]


PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
MAX_READING = 64  # connections whose request is being read at once


class Requests:
    """Connections whose one request is still being read, each by its own deadline: the
    zygote is single-threaded, and a peer that sends half a request and waits must hold up
    nothing but its own connection."""

    def __init__(self, sel: selectors.BaseSelector) -> None:
        self.sel = sel
        self.reading: dict[socket.socket, tuple[frames.FrameReader, float]] = {}

    def add(self, conn: socket.socket) -> tuple[bool, Any]:
        """Start reading `conn`'s request; as `read`, for what has already arrived (most
        often all of it: no turn of the serve loop waits for it)."""
        if len(self.reading) >= MAX_READING:
            conn.close()
            return False, None
        conn.setblocking(False)
        deadline = time.monotonic() + REQUEST_READ_TIMEOUT
        self.reading[conn] = (frames.FrameReader(frames.MAX_REQUEST), deadline)
        self.sel.register(conn, selectors.EVENT_READ, conn)
        return self.read(conn)

    def read(self, conn: socket.socket) -> tuple[bool, Any]:
        """(True, the request) once it is whole, the connection blocking again (it goes to
        a child as it is); (False, None) while it is not (or it was dropped: bad, closed)."""
        reader, _ = self.reading[conn]
        try:
            done, request = reader.feed(conn)
        except BlockingIOError:
            return False, None
        except (OSError, frames.FrameError):
            self._drop(conn)
            return False, None
        if done:
            self.sel.unregister(conn)
            del self.reading[conn]
            conn.setblocking(True)
        return done, request

    def expire(self) -> None:
        now = time.monotonic()
        for conn in [c for c, (_, deadline) in self.reading.items() if now > deadline]:
            self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        self.sel.unregister(conn)
        del self.reading[conn]
        conn.close()


class Listener:
    """The pod's way in: an abstract unix socket (in the pod's network namespace, shared by
    its containers; no file that tenant code could unlink or replace), accepting only
    connections from the runner's uid — tenant code runs as the worker's uid and cannot
    take another (no capabilities, no setuid), so it cannot start an advance or hold a
    request open here."""

    def __init__(self, name: str, runner_uid: int) -> None:
        self.runner_uid = runner_uid
        self.refused = 0
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(frames.abstract_address(name))
        self.server.listen(64)

    def accept(self) -> socket.socket | None:
        """The next connection if the runner made it; any other is closed unread."""
        conn, _ = self.server.accept()
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size)
        pid, uid, _ = PEERCRED.unpack(creds)
        if uid == self.runner_uid:
            return conn
        conn.close()
        self.refused += 1
        if self.refused & (self.refused - 1) == 0:  # 1, 2, 4, ...: bounded logs
            _log("connection refused: not the runner", uid=uid, pid=pid, refused=self.refused)
        return None


def serve(zygote: Zygote, *, listener: Listener | None, control_fd: int | None) -> None:
    sel = selectors.DefaultSelector()
    requests = Requests(sel)
    zygote.listener = listener
    control = None
    if listener is not None:
        sel.register(listener.server, selectors.EVENT_READ, listener)
    else:
        assert control_fd is not None
        control = socket.socket(fileno=control_fd)
        sel.register(control, selectors.EVENT_READ, control)
    while True:
        for key, _ in sel.select(timeout=TICK if requests.reading else zygote.tick()):
            if key.data is listener:
                accepted = listener.accept()
                incoming = [accepted] if accepted else []
            elif key.data is control:
                try:
                    incoming = _receive_fds(control)
                except EOFError:
                    return  # the runner is gone: so are we (the jail follows)
            else:  # a connection whose request is being read (data: the connection)
                done, request = requests.read(key.data)
                if done:
                    zygote.handle(key.data, request)
                continue
            for conn in incoming:
                done, request = requests.add(conn)
                if done:
                    zygote.handle(conn, request)
        requests.expire()
        zygote.reap()
        zygote.ensure_spare()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="the tenant's data directory")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--memory-bytes", type=int, default=1 << 30, help="per advance")
    parser.add_argument("--secrets", help="the Tenant's Secrets, one read-only dir each")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", help="abstract unix socket (@name) to accept the runner on")
    where.add_argument("--fd", type=int, help="inherited control socket passing connections")
    parser.add_argument("--runner-uid", type=int, help="with --listen: the only peer uid served")
    args = parser.parse_args(argv)
    if args.listen and args.runner_uid is None:
        parser.error("--listen needs --runner-uid: only the runner may start an advance")
    os.chdir("/")
    harden_self()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        listener = Listener(args.listen, args.runner_uid) if args.listen else None
    except ValueError as exc:
        parser.error(str(exc))
    zygote = Zygote(args.data, args.tenant, args.memory_bytes, args.secrets)
    serve(zygote, listener=listener, control_fd=args.fd)


if __name__ == "__main__":
    main()
