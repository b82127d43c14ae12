"""The worker host's own bookkeeping, against a real zygote process (no jail needed):
every advance child leaves its table when it ends, nothing an advance started survives
it, and a local sandbox leaves no cgroup behind when it stops."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tenantflow.engine import EngineLimits
from tenantflow.sandbox.jail.local import CGROUP_PREFIX, CGROUP_ROOT, LocalSandboxes
from tenantflow.sandbox.pod import worker
from tenantflow.sandbox.protocol import frames
from tenantflow.sandbox.protocol.payload import advance_payload, advance_request
from tenantflow.tenancy import manifests

pytestmark = pytest.mark.slow
DETACHED = """
import os, time
async def run(event, step):
    def spawn():
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(600)
            os._exit(0)
        return "spawned"
    return await step.do("spawn", spawn)
"""
# a process that leaves its advance's group (told before the step returns) and starts
# its sleeper only once the advance is over: no kill aimed at the advance can reach it
DETACHED_LATE = """
import os, time
async def run(event, step):
    def spawn():
        r, w = os.pipe()
        if os.fork() == 0:
            os.setsid()
            os.write(w, b"x")
            time.sleep(0.3)
            if os.fork() == 0:
                time.sleep(600)
            os._exit(0)
        os.close(w)
        os.read(r, 1)
        return "spawned"
    return await step.do("spawn", spawn)
"""
BENIGN = "async def run(event, step):\n    return await step.do('ok', lambda: 'fine')\n"


SETEUID = threading.Lock()


class Zygote:
    def __init__(
        self, root: Path, *, runner_uid: int | None = None, pid_namespace: bool = False
    ) -> None:
        """A zygote listening as the pod's does; `runner_uid`: the only uid it serves (the
        test connects with that effective uid; tenant code runs as ours); `pid_namespace`:
        as pid 1 of a pid namespace of its own, as in a pod (`unshare` is its parent here)."""
        self.name = f"@tenantflow-test-{os.getpid()}-{root.name}"
        self.runner_uid = os.getuid() if runner_uid is None else runner_uid
        unshare = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]
        own = unshare if pid_namespace else []
        self.proc = subprocess.Popen(
            [
                *own,
                *(sys.executable, "-I", "-m", "tenantflow.sandbox.pod.zygote", "--data", str(root)),
                *("--tenant", root.name, "--listen", self.name),
                *("--runner-uid", str(self.runner_uid)),
            ],
            cwd="/",
        )
        for _ in range(200):
            with contextlib.suppress(OSError), self.connect():
                return
            time.sleep(0.05)
        raise AssertionError("the zygote did not start")

    def connect(self) -> socket.socket:
        """A connection made as the runner (its effective uid at connect() is the peer's)."""
        conn = socket.socket(socket.AF_UNIX)
        with SETEUID:  # the effective uid is the whole process's
            os.seteuid(self.runner_uid)
            try:
                conn.connect(frames.abstract_address(self.name))
            except OSError:
                conn.close()
                raise
            finally:
                os.seteuid(0)
        return conn

    def call(self, request: dict[str, Any] | bytes) -> Any:
        """The answer, after the progress frames the child sends as attempts start."""
        with self.connect() as conn:
            conn.sendall(request if isinstance(request, bytes) else frames.encode(request))
            while True:
                answer = frames.recv(conn, frames.MAX_RESULT)
                if not (isinstance(answer, dict) and set(answer) == {frames.PROGRESS}):
                    return answer

    def advance(self, source: str, params: Any = None) -> Any:
        payload = advance_payload(
            source=source,
            instance_id="i",
            started_at="2030-01-01T00:00:00Z",
            params=params,
            limits=EngineLimits(max_step_timeout=5, batch_seconds=1),
        )
        return self.call(advance_request(payload))

    def descendants(self) -> list[int]:
        """Every process below the zygote (children of children included)."""
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        found, frontier = [], {self.proc.pid}
        while frontier:
            frontier = {p for p, pp in parents.items() if pp in frontier}
            found += frontier
        return found


@pytest.fixture()
def zygote(tmp_path: Path) -> Iterator[Zygote]:
    z = Zygote(tmp_path)
    yield z
    z.proc.kill()
    z.proc.wait()


def test_advance_children_leave_the_table_and_detached_ones_die(zygote: Zygote) -> None:
    assert zygote.advance(DETACHED)["outcome"]["output"] == "spawned"
    for _ in range(5):
        assert zygote.advance(BENIGN)["outcome"]["output"] == "fine"
    for _ in range(100):  # the reaper runs every 50 ms
        ping = zygote.call({"op": "ping"})
        if ping["children"] == 0 and zygote.descendants() == [ping["spare"]]:
            break
        time.sleep(0.05)
    ping = zygote.call({"op": "ping"})
    assert ping["children"] == 0
    assert zygote.descendants() == [ping["spare"]], "a process of an advance outlived it"


def test_in_a_pid_namespace_of_its_own_what_advances_leave_dies_too(tmp_path: Path) -> None:
    # as in a pod: the zygote is pid 1 and skips reading /proc/*/stat while the namespace
    # holds only itself, its spare and its advances; a detached process is not one of them
    zygote = Zygote(tmp_path, pid_namespace=True)
    try:
        payload = advance_payload(
            source=DETACHED_LATE, instance_id="i", started_at="2030-01-01T00:00:00Z"
        )
        with zygote.connect() as conn:  # held open: the advance is over, not abandoned
            conn.sendall(advance_request(payload))
            while (answer := frames.recv(conn, frames.MAX_RESULT)).keys() == {frames.PROGRESS}:
                pass
            assert answer["outcome"]["output"] == "spawned"
            for _ in range(40):
                if zygote.call({"op": "ping"})["children"] == 0:
                    break
                time.sleep(0.05)
        for _ in range(100):  # no other advance: only the idle reaper can find it
            if zygote.call({"op": "ping"})["children"] == 0 and len(zygote.descendants()) == 2:
                break
            time.sleep(0.05)
        assert zygote.call({"op": "ping"})["children"] == 0
        # unshare's child (the zygote) and its spare: the detached sleeper is gone
        assert len(zygote.descendants()) == 2, "a process of an advance outlived it"
    finally:
        zygote.proc.kill()
        zygote.proc.wait()


SELF_KILL = """
import os, signal
async def run(event, step):
    await step.do("fine", lambda: 1)
    return await step.do("die", lambda: os.kill(os.getpid(), signal.SIGKILL))
"""


def test_a_child_that_dies_is_reported_with_the_attempts_it_had_started(tmp_path: Path) -> None:
    """Frames on the answer's connection: each attempt as it starts (from the child), then
    the zygote's account of the death in place of an answer."""
    zygote = Zygote(tmp_path)
    try:
        payload = advance_payload(
            source=SELF_KILL, instance_id="i", started_at="2030-01-01T00:00:00Z"
        )
        with zygote.connect() as conn:
            conn.sendall(advance_request(payload))
            received = []
            while True:
                try:
                    received.append(frames.recv(conn, frames.MAX_RESULT))
                except frames.PeerClosed:
                    break
    finally:
        zygote.proc.kill()
        zygote.proc.wait()
    progress = [f[frames.PROGRESS] for f in received if frames.PROGRESS in f]
    assert progress == [{"step": "fine", "attempt": 1}, {"step": "die", "attempt": 1}]
    lost = [f[frames.LOST] for f in received if frames.LOST in f]
    assert len(lost) == 1 and received[-1] == {frames.LOST: lost[0]}
    assert lost[0]["name"] == "WorkerKilled" and "SIGKILL" in lost[0]["message"], lost


LONG = """
import time
async def run(event, step):
    return await step.do("long", lambda: time.sleep(60) or "finished")
"""


def test_an_advance_whose_runner_hangs_up_is_killed(zygote: Zygote) -> None:
    """No one will take its answer, and a new advance of the instance may be running:
    the child goes as soon as its connection closes."""
    payload = advance_payload(
        source=LONG,
        instance_id="i",
        started_at="2030-01-01T00:00:00Z",
        limits=EngineLimits(max_step_timeout=120, batch_seconds=1),
    )
    conn = zygote.connect()
    conn.sendall(advance_request(payload))
    assert frames.recv(conn, frames.MAX_RESULT) == {frames.PROGRESS: {"step": "long", "attempt": 1}}
    assert zygote.descendants(), "the advance runs"
    conn.close()
    spare = _wait_for_spare(zygote)  # the next advance's child, forked after this one
    for _ in range(40):
        if zygote.descendants() == [spare]:
            break
        time.sleep(0.05)
    assert zygote.descendants() == [spare], "the abandoned advance was not killed"
    assert zygote.call({"op": "ping"})["children"] == 0


def test_a_stopped_local_sandbox_leaves_no_cgroup(tmp_path: Path) -> None:
    async def scenario() -> None:
        sandboxes = LocalSandboxes(tmp_path / "s")
        await sandboxes.endpoint("cgroup-probe", str(tmp_path / "d"), b"key")
        await asyncio.sleep(0.5)  # the runner has started its jail
        groups = list(CGROUP_ROOT.glob(f"*/{CGROUP_PREFIX}cgroup-probe"))
        assert groups, "the jail runs in its own cgroups"
        # its own CPU weight, the same for every tenant (v1 shares, v2 weight)
        weights = [g / f for g in groups for f in ("cpu.shares", "cpu.weight")]
        assert [w.read_text().strip() for w in weights if w.exists()] in (["1024"], ["100"])
        sandboxes.stop_all()

    asyncio.run(scenario())
    assert list(CGROUP_ROOT.glob(f"*/{CGROUP_PREFIX}cgroup-probe")) == []


KILL_THE_SPARE = """
import os, signal
async def run(event, step):
    def kill(sig):
        me, parent = os.getpid(), os.getppid()
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == parent and int(entry) != me:  # a sibling: the next advance's child
                os.kill(int(entry), getattr(signal, sig))
        return sig
    return await step.do("kill", lambda: kill(event["payload"]["signal"]))
"""


def _wait_for_spare(zygote: Zygote, not_this: int | None = None) -> int:
    for _ in range(100):
        spare = zygote.call({"op": "ping"})["spare"]
        if spare and spare != not_this:
            return int(spare)
        time.sleep(0.05)
    raise AssertionError("no spare was forked")


def test_each_advance_goes_to_a_child_forked_ahead_and_a_new_one_follows(zygote: Zygote) -> None:
    first = _wait_for_spare(zygote)
    assert zygote.advance(BENIGN)["outcome"]["output"] == "fine"
    second = _wait_for_spare(zygote, not_this=first)
    for _ in range(40):  # reaped within 50 ms of its exit
        if zygote.descendants() == [second]:
            break
        time.sleep(0.05)
    assert zygote.descendants() == [second], "the spare served one advance and exited"
    status = Path(f"/proc/{second}/status").read_text()
    assert "\nSigBlk:\t0000000000000000" in status, "waiting with default signal handling"
    fds = sorted(int(fd) for fd in os.listdir(f"/proc/{second}/fd"))
    held = sorted(_kind(os.readlink(f"/proc/{second}/fd/{fd}")) for fd in fds[3:])
    # its socket to the zygote, and what it made ahead (worker.Ready): its event loop (an
    # epoll and its wake-up socket pair) and the tenant's database with its WAL files
    expected = ["db", "db-shm", "db-wal", "epoll", "socket", "socket", "socket"]
    assert fds[:3] == [0, 1, 2] and held == expected, f"nothing of the zygote's: {held}"


def _kind(target: str) -> str:
    if target.startswith("socket:"):
        return "socket"
    if target == "anon_inode:[eventpoll]":
        return "epoll"
    name = Path(target).name
    return "db" + name.removeprefix(worker.DATABASE) if name.startswith(worker.DATABASE) else target


REMOVES_THE_DATABASE = """
import os
async def run(event, step, env):
    def write():
        env.db.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)")
        env.db.execute("INSERT INTO t VALUES (?)", (event["payload"],))
        return [r["v"] for r in env.db.query("SELECT v FROM t")]
    seen = await step.do("write", write)
    if event["payload"] == "before":  # the next advance's spare has this file open
        for suffix in ("", "-wal", "-shm"):
            os.unlink("../tenant.sqlite3" + suffix)
    return seen
"""


def test_a_database_removed_after_the_spare_opened_it_is_not_written_to(
    zygote: Zygote, tmp_path: Path
) -> None:
    """Hostile (to itself, or a tenant's reset): an advance removes the tenant's database
    while the next advance's spare holds a connection to it. That advance must write to
    the file now at the path, not into the removed one, where its writes would be lost."""
    _wait_for_spare(zygote)
    assert zygote.advance(REMOVES_THE_DATABASE, "before")["outcome"]["output"] == ["before"]
    assert zygote.advance(REMOVES_THE_DATABASE, "after")["outcome"]["output"] == ["after"]
    kept = sqlite3.connect(tmp_path / worker.DATABASE).execute("SELECT v FROM t").fetchall()
    assert kept == [("after",)]


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGSTOP"])
def test_tenant_code_that_kills_or_stops_the_spare_only_costs_a_fork(
    zygote: Zygote, signal_name: str
) -> None:
    """Hostile: an advance finds its sibling (the next advance's child) and kills or stops
    it; the next advance still runs (forked on demand if need be) and the zygote answers."""
    _wait_for_spare(zygote)
    payload = advance_payload(
        source=KILL_THE_SPARE,
        instance_id="i",
        started_at="2030-01-01T00:00:00Z",
        params={"signal": signal_name},
        limits=EngineLimits(max_step_timeout=5, batch_seconds=1),
    )
    assert zygote.call(advance_request(payload))["outcome"]["output"] == signal_name
    assert zygote.advance(BENIGN)["outcome"]["output"] == "fine"
    assert zygote.call({"op": "ping"})["ok"] is True


# ---------------------------------------------------------------- the pod's zygote socket
HOSTILE = Path(__file__).resolve().parents[1] / "hostile"
POD_SOCKET_PROGRAMS = sorted(HOSTILE.glob("c17_*.py"))
PROMPT = 1.0  # seconds another tenant's advance may take beside a hostile one


@pytest.fixture()
def pod_zygotes(tmp_path: Path) -> Iterator[tuple[Zygote, Zygote]]:
    """Two tenants' zygotes as in their pods: serving only the runner's uid (RUNNER_UID),
    while tenant code runs as another (here: ours). Both listen where the hostile one's
    code can reach them, which two pods' network namespaces would not even allow."""
    zygotes = []
    for tenant in ("hostile", "victim"):
        (tmp_path / tenant).mkdir()
        zygotes.append(Zygote(tmp_path / tenant, runner_uid=manifests.RUNNER_UID))
    yield zygotes[0], zygotes[1]
    for z in zygotes:
        z.proc.kill()
        z.proc.wait()


@pytest.mark.parametrize("program", POD_SOCKET_PROGRAMS, ids=lambda p: p.stem)
def test_tenant_code_cannot_start_or_stall_requests_on_the_pods_zygote_socket(
    pod_zygotes: tuple[Zygote, Zygote], program: Path
) -> None:
    """Class 17 in the pod's layout (the local jail gives tenant code no socket to try):
    the hostile programs are refused, and both tenants' advances stay prompt meanwhile."""
    hostile, victim = pod_zygotes
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(hostile.advance, program.read_text(), {"zygote_socket": hostile.name})
        time.sleep(0.7)
        assert not running.done(), "the hostile advance ended before the others began"
        for zygote in (victim, hostile):
            started = time.monotonic()
            assert zygote.advance(BENIGN)["outcome"]["output"] == "fine"
            assert time.monotonic() - started < PROMPT
        result = running.result(timeout=30)
    assert result["outcome"]["kind"] == "Complete", result
    assert result["outcome"]["output"] == "contained", result["outcome"]
    assert hostile.call({"op": "ping"})["refused"] > 0, "the program did reach the socket"


def test_a_half_sent_request_from_the_runner_itself_stalls_nothing(zygote: Zygote) -> None:
    """Requests are read side by side, each by its deadline: a runner connection that
    stops mid-frame (a runner killed while writing) holds up only itself."""
    with zygote.connect() as stalled:
        stalled.sendall(frames.HEADER.pack(1000) + b'{"op": "pi')
        started = time.monotonic()
        assert zygote.advance(BENIGN)["outcome"]["output"] == "fine"
        assert zygote.call({"op": "ping"})["ok"] is True
        assert time.monotonic() - started < PROMPT


@pytest.mark.parametrize("budget", [None, "60", True, 0, -1, 1e12])
def test_an_advance_without_a_usable_budget_is_refused(zygote: Zygote, budget: Any) -> None:
    """The zygote kills a child at its budget: a request that gives none it can use runs
    nothing (no child is handed the connection) and says which field."""
    _wait_for_spare(zygote)
    head = {"op": "advance"} if budget is None else {"op": "advance", "budget": budget}
    answer = zygote.call(frames.encode(head) + frames.encode({"not": "read"}))
    assert "budget must be a number of seconds" in answer["error"]
    assert zygote.call({"op": "ping"})["children"] == 0
    assert zygote.advance(BENIGN)["outcome"]["output"] == "fine"


def test_a_payload_that_is_not_an_object_costs_only_its_child(zygote: Zygote) -> None:
    """The payload is read by the child, not by the zygote: one that is not an object (or
    not a frame) ends that child, reported as lost; the zygote serves the next one."""
    _wait_for_spare(zygote)
    with zygote.connect() as conn:
        conn.sendall(frames.encode({"op": "advance", "budget": 5}) + frames.encode([1, 2]))
        answer = frames.recv(conn, frames.MAX_RESULT)
    assert answer[frames.LOST]["name"] == frames.WORKER_KILLED, answer
    assert zygote.advance(BENIGN)["outcome"]["output"] == "fine"


WRITES_TO_A_CLOSED_PEER = """
import socket
async def run(event, step):
    def write():
        ours, theirs = socket.socketpair()
        theirs.close()
        try:
            ours.sendall(b"x" * 100)
        except BrokenPipeError:
            return "EPIPE"
        return "sent"
    return await step.do("write", write)
"""


def test_a_write_to_a_peer_that_hung_up_is_an_error_in_the_step_not_a_death(
    zygote: Zygote,
) -> None:
    """As in any Python process, SIGPIPE is ignored: the step sees BrokenPipeError (an
    HTTP server that closed first, a refused unix socket). With the default action the
    advance was killed by SIGPIPE and counted as a lost worker; three in a row Errored the
    isolation test's probes (they write to sockets that refuse them)."""
    assert zygote.advance(WRITES_TO_A_CLOSED_PEER)["outcome"]["output"] == "EPIPE"
