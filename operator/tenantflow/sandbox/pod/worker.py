"""One advance in a fresh child process: hard limits, seccomp, a fresh database, then exit.

The zygote forks a process for every advance, so nothing survives from one advance to the
next: no open transaction on a shared connection, no monkeypatched module, no hoarded file
descriptor, no thread of a step that ignored its timeout. Everything in and out is a JSON
frame; the child ends with os._exit, so tenant code cannot run anything after it.

To keep fork() off the request's path the zygote forks the next child ahead of time: a
*spare* (`spare_main`) that has done everything that does not depend on the request (its
own session, default signals, no inherited descriptors, the scratch directory, the
seccomp filter, then its event loop and its connection to the tenant's database: `Ready`)
and waits for exactly one advance — the runner's connection and the payload — on a socket
pair shared only with the zygote. It has never run tenant code; the limits that depend on
the payload (deadline, storage) come after it, as in a child forked on demand
(`child_main`). The filter is loaded before the database is opened: the file is the
tenant's, and whatever SQLite reads of it is read under the same filter as the advance.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import math
import os
import resource
import signal
import socket
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenantflow.durations import format_time, parse_time
from tenantflow.engine.env import (
    MAX_LOG_LINE_BYTES,
    MAX_STREAMED_BYTES,
    MAX_STREAMED_LINES,
    STREAM_BATCH,
    Lines,
)
from tenantflow.engine.errors import EngineError
from tenantflow.engine.executor import WorkflowLoop, advance, query
from tenantflow.engine.journal import StepState
from tenantflow.engine.journal import load as load_journal
from tenantflow.engine.loader import WorkflowFn, main_file, revision
from tenantflow.engine.outcome import Advance, Errored
from tenantflow.engine.queries import QueryError
from tenantflow.engine.secrets import Secrets
from tenantflow.engine.typescript import is_guest
from tenantflow.engine.wire import (
    advance_to_wire,
    child_results_from_wire,
    defaults_from_wire,
    inbox_from_wire,
    limits_from_wire,
)
from tenantflow.sandbox.pod import seccomp
from tenantflow.sandbox.protocol import frames, vouch
from tenantflow.sandbox.protocol.payload import ATTRIBUTES, QUERY, advance_payload, deadline_seconds
from tenantflow.storage.database import DatabaseError, TenantDatabase
from tenantflow.storage.outputs import SqliteOutputStore
from tenantflow.storage.step_results import SqliteStepResults
from tenantflow.supervisor.usage import STORAGE_BYTES
from tenantflow.vocabulary import DEFAULT_ENTRYPOINT, namespace_of

MAX_FILES = 256
ADVANCE_NICE = 19
CPU_SLACK_SECONDS = 2  # RLIMIT_CPU past the deadline (_limit)
TAKEN = b"K"  # a spare's answer once it holds its advance
DATABASE = "tenant.sqlite3"
BAD_REQUEST = "badRequest"  # the answer's key when the payload itself could not be run


@dataclass(frozen=True)
class Sandbox:
    """What every child of one worker host shares: the tenant, its data directory, the
    memory each advance may use and the seccomp filter (built once, in the zygote)."""

    data_dir: str
    tenant: str
    memory: int
    syscalls: seccomp.Filter
    secrets_dir: str | None = None  # the Tenant's Secrets, mounted read-only (pods)


@dataclass
class Ready:
    """What a child makes before its advance (a spare: before it knows it), so that the
    advance itself does not wait for it: its event loop and its connection to the tenant's
    database (None where it could not be opened: the advance opens it and says why)."""

    loop: WorkflowLoop
    db: TenantDatabase | None
    db_file: tuple[int, int] | None  # (st_dev, st_ino) of the file `db` opened

    @classmethod
    def make(cls, box: Sandbox) -> Ready:
        box.syscalls.load()  # first: SQLite reads the tenant's file under the filter
        loop, path = WorkflowLoop(), Path(box.data_dir) / DATABASE
        try:
            db = TenantDatabase(path)
            st = os.stat(path)
        except (DatabaseError, OSError):
            return cls(loop, None, None)
        return cls(loop, db, (st.st_dev, st.st_ino))

    def database(self, path: Path) -> TenantDatabase | None:
        """The connection made ahead if it is still to the file at `path` (another advance's
        code may have removed or replaced the file since: writes to an unlinked file would
        be lost); None otherwise."""
        db, self.db = self.db, None
        if db is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == self.db_file:
            return db
        db.close()
        return None


def child_main(conn: socket.socket, box: Sandbox) -> None:
    """A child forked for its advance: its whole life; never returns."""
    try:
        _prepare(conn, box.data_dir)
        ready = Ready.make(box)
        payload = read_payload(conn)
    except BaseException:
        os._exit(70)
    _serve(conn, payload, box, ready)


def spare_main(control: socket.socket, box: Sandbox) -> None:
    """A child forked ahead of its advance: prepared, then waiting on `control` for the
    runner's connection (passed as a descriptor), from which it reads its payload; never
    returns. The zygote closing `control` instead (it is stopping) ends it."""
    try:
        _prepare(control, box.data_dir)
        ready = Ready.make(box)
        conn = receive_advance(control)
        control.close()
        payload = read_payload(conn)
    except BaseException:
        os._exit(70)
    _serve(conn, payload, box, ready)


def hand_over(control: socket.socket, conn: socket.socket) -> None:
    """The zygote's side: give a spare its connection, and wait (within the socket's
    timeout) for the spare to say it took it. A spare a neighbour stopped or killed raises
    OSError, and the advance goes to a child forked on demand instead."""
    control.sendmsg([b"A"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array("i", [conn.fileno()]))])
    if control.recv(1) != TAKEN:
        raise ConnectionError("the spare ended before taking its advance")


def receive_advance(control: socket.socket) -> socket.socket:
    fds = array("i")
    msg, ancdata, _, _ = control.recvmsg(1, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if msg != b"A" or len(fds) != 1:
        raise EOFError("the zygote closed the spare's socket")
    control.sendall(TAKEN)  # the zygote waits for this: a stopped spare never says it
    return socket.socket(fileno=fds[0])


def read_payload(conn: socket.socket) -> dict[str, Any]:
    """The advance's payload: the frame after the head the zygote read (advance_request)."""
    payload = frames.recv(conn, frames.MAX_REQUEST)
    if not isinstance(payload, dict):
        raise frames.FrameError("the payload is not an object")
    return payload


def _serve(conn: socket.socket, payload: dict[str, Any], box: Sandbox, ready: Ready) -> None:
    """Limits, the advance, the answer; never returns."""
    code = 0
    try:
        _limit(payload, box.memory)
        printed = _capture_output()
        last: list[tuple[str, int]] = []  # the step attempt that started last
        send = _sender(conn)
        lines = _liner(send)
        try:
            result = run(
                payload,
                box.data_dir,
                box.tenant,
                report=_reporter(send, last),
                secrets_dir=box.secrets_dir,
                vouch_for=_voucher(send),
                on_lines=lines,
                memory=box.memory,
                ready=ready,
            )
            _stream_output(lines, printed, last)
        except Exception as exc:  # not tenant code (the engine catches that): the request
            result = {BAD_REQUEST: f"{type(exc).__name__}: {exc}"[:1000]}
        try:
            send(result)
        except ValueError as exc:  # the result is not safe JSON: say so, keep the journal
            send(failed(payload, "SandboxBadOutput", str(exc)))
    except BaseException:  # the runner sees EOF and reports a lost worker
        code = 70
    os._exit(code)


def _capture_output() -> int:
    """Descriptors 1 and 2 into an in-memory file: what the advance's subprocesses print
    (Python's own print goes to its step's lines in the engine). Read at the end."""
    printed = os.memfd_create("output")
    os.dup2(printed, 1)
    os.dup2(printed, 2)
    return printed


def _stream_output(
    lines: Callable[[Lines], None], printed: int, last: list[tuple[str, int]]
) -> None:
    """The lines the advance's subprocesses printed, as output lines of the step attempt
    that started last (a subprocess runs inside a step), streamed in batches, capped as
    the engine caps what Python prints (MAX_STREAMED_LINES/BYTES, then one marker)."""
    head = os.pread(printed, MAX_STREAMED_BYTES + 1, 0)
    if not head:
        return
    text = head[:MAX_STREAMED_BYTES].decode("utf-8", "replace")
    found = text.split("\n", MAX_STREAMED_LINES)  # bounded: a flood of empty lines too
    if found[-1] == "":
        found.pop()  # the newline that ended the last line
    kept = [line.removesuffix("\r") for line in found[:MAX_STREAMED_LINES]]
    if len(head) > MAX_STREAMED_BYTES or len(found) > MAX_STREAMED_LINES:
        kept.append(
            f"[tenantflow] subprocess output past {MAX_STREAMED_LINES} lines or "
            f"{MAX_STREAMED_BYTES} bytes in this advance dropped"
        )
    at = format_time(dt.datetime.now(dt.UTC))
    where = {"step": last[-1][0], "attempt": last[-1][1]} if last else {}
    for i in range(0, len(kept), STREAM_BATCH):
        lines(
            [
                {"ts": at, "level": "output", "message": line[:MAX_LOG_LINE_BYTES], "fields": {}}
                | where
                for line in kept[i : i + STREAM_BATCH]
            ]
        )


def _sender(conn: socket.socket) -> Callable[[Any], None]:
    """frames.send on the advance's connection, one whole frame at a time: step bodies'
    threads stream lines while the event loop reports attempts."""
    lock = threading.Lock()

    def send(value: Any) -> None:  # a frame's value, or a frame already encoded
        data = value if isinstance(value, bytes) else frames.encode(value)
        with lock:
            conn.sendall(data)

    return send


MAX_LINES_FRAME = 4 * 1024 * 1024  # a batch's frame, far below frames.MAX_RESULT


def _liner(send: Callable[[Any], None]) -> Callable[[Lines], None]:
    """Hand a batch of log lines to the runner (frames.LINES), which keeps them in the
    tenant's history as they come. A batch whose frame would be too big (control
    characters grow sixfold in JSON) goes in halves; a line that cannot go at all is
    dropped, never an error of the tenant's own print."""

    def lines(batch: Lines) -> None:
        try:
            frame = frames.encode({frames.LINES: batch})
        except ValueError:
            frame = b""  # not JSON after all: each line alone, the bad one dropped
        if (not frame or len(frame) > MAX_LINES_FRAME) and len(batch) > 1:
            half = len(batch) // 2
            lines(batch[:half])
            lines(batch[half:])
            return
        if frame and len(frame) <= MAX_LINES_FRAME:
            with contextlib.suppress(OSError):
                send(frame)

    return lines


def _reporter(
    send: Callable[[Any], None], last: list[tuple[str, int]]
) -> Callable[[str, int], None]:
    """Tell the runner which step attempt starts: if the kernel kills this process (its
    memory limit), the runner knows which steps to charge; `last` keeps it here too."""

    def report(step: str, attempt: int) -> None:
        last[:] = [(step, attempt)]
        with contextlib.suppress(OSError):
            send({frames.PROGRESS: {"step": step, "attempt": attempt}})

    return report


def _voucher(send: Callable[[Any], None]) -> Callable[[str, str], None]:
    """Tell the runner of a step result just recorded (its digest): the runner keeps it,
    out of tenant code's reach, so that only this run recalls it (`sandbox.protocol.vouch`)."""

    def vouch_for(step: str, sha256: str) -> None:
        with contextlib.suppress(OSError):
            send({vouch.RESULT: {"step": step, "sha256": sha256}})

    return vouch_for


def _prepare(kept: socket.socket, data_dir: str) -> None:
    """What a child does before it knows its advance: its own session, default signals,
    no inherited descriptor but `kept`, the scratch directory."""
    os.setsid()  # its own process group: the zygote kills the whole group at the deadline
    # below the zygote, which must keep up with killing a fork bomb's remains (tenant code
    # cannot lower it again: that needs CAP_SYS_NICE); the sandbox's CPU share as a whole
    # is the pod's or the jail's cgroup, so this costs the tenant nothing against others
    os.nice(ADVANCE_NICE)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an over-size write fails with EFBIG
    # as in any Python process: a write to a closed socket or pipe raises BrokenPipeError
    # in the step (a peer that hung up), it does not kill the advance as a lost worker;
    # subprocesses get the default back (subprocess's restore_signals)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    keep = sorted({0, 1, 2, kept.fileno()})
    for low, high in zip(keep, [*keep[1:], MAX_FILES * 4], strict=True):
        os.closerange(low + 1, high)  # the zygote's listening socket and control fd too
    scratch = Path(data_dir) / "scratch"
    scratch.mkdir(exist_ok=True)
    os.chdir(scratch)


def _limit(payload: dict[str, Any], memory: int) -> None:
    """The advance's hard limits (they depend on its payload: deadline, storage). A
    TypeScript advance gets no address-space limit: V8 reserves tens of GiB of it up front
    and caps its heap itself (engine/typescript.py); the pod's memory limit holds the rest.
    The CPU limit is a backstop a little past the deadline: the zygote's kill at the deadline
    must come first, or a runtime whose threads spend more than a second of CPU per second
    (Deno compiling while its main thread spins) dies of SIGKILL and is reported as a
    crash instead of the step's timeout."""
    cpu = cpu_seconds(deadline_seconds(payload))
    if _is_typescript(payload):
        memory = 0
    storage = payload.get("storage") or {}
    max_bytes = storage.get("maxBytes")  # no file of the tenant's grows past its storage
    hard = {
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NOFILE: MAX_FILES,
        resource.RLIMIT_CPU: cpu,
        **({resource.RLIMIT_AS: memory} if memory else {}),
        **({resource.RLIMIT_FSIZE: int(max_bytes)} if max_bytes else {}),
    }
    # No RLIMIT_NPROC: it counts every process of the uid on the host, so one tenant's
    # fork bomb would stop every sandbox sharing that uid. Process counts are capped per
    # sandbox instead: the local jail's pids cgroup, the pod's podPidsLimit.
    for limit, value in hard.items():
        resource.setrlimit(limit, (value, value))  # soft == hard: no raising it back
    for var in [v for v in os.environ if v.startswith(("TENANTFLOW_", "KUBE"))]:
        del os.environ[var]


def cpu_seconds(deadline: float) -> int:
    """An advance's CPU allowance (RLIMIT_CPU, all its threads): its deadline and a slack."""
    return math.ceil(deadline) + CPU_SLACK_SECONDS


def _is_typescript(payload: dict[str, Any]) -> bool:
    rev = payload.get("revision") or {}
    files = rev.get("files")
    return isinstance(files, dict) and is_guest(main_file(files, str(rev.get("main") or "")))


WARM_UP = """
async def run(event, step, env):
    async def step_fn():
        env.log.info("warm", n=1)
        return env.db.query("SELECT 1 AS one")
    return await step.do("warm", step_fn)
"""


def warm_up(scratch_dir: str) -> None:
    """One advance in the zygote before it forks, so children inherit warm imports and
    caches. Async steps only: a started thread pool would not survive the fork."""
    run(
        advance_payload(source=WARM_UP, instance_id="warm-up", started_at="2000-01-01T00:00:00Z"),
        scratch_dir,
        "warm-up",
    )
    # Nothing holding a file descriptor may be left for a later garbage collection: in a
    # child it would close whatever reused that descriptor number.
    gc.collect()
    gc.freeze()


def run(
    payload: dict[str, Any],
    data_dir: str,
    tenant: str,
    report: Callable[[str, int], None] | None = None,
    secrets_dir: str | None = None,
    vouch_for: Callable[[str, str], None] | None = None,
    on_lines: Callable[[Lines], None] | None = None,
    memory: int = 0,
    ready: Ready | None = None,
) -> dict[str, Any]:
    """One advance for one instance; everything in and out is JSON-shaped. `vouch_for`:
    how the runner learns of recorded step results (None: no runner, nothing recalled);
    `on_lines`: where its log lines stream (None: in the answer, with the answer's caps);
    `memory`: the advance's memory, the heap limit of a TypeScript one (0: none);
    `ready`: the loop and database connection made ahead (None: made here)."""
    rev = payload["revision"]
    secrets = Secrets(secrets_dir, namespace_of(tenant))
    entrypoint = rev.get("entrypoint", DEFAULT_ENTRYPOINT)
    label = str(rev.get("name") or "workflow")
    try:
        scratch = str(Path(data_dir) / "scratch")
        with revision(rev["files"], rev["main"], entrypoint, label, memory or None, scratch) as fn:
            if QUERY in payload:  # read-only: no reports, no vouching, no writes
                return _query_loaded(fn, payload, data_dir, tenant, secrets)
            return _run_loaded(
                fn, payload, data_dir, tenant, report, secrets, vouch_for, on_lines, ready
            )
    except EngineError as exc:  # the code itself (a file name, an import), before any step
        if QUERY in payload:
            return query_failed(payload, exc.reason, str(exc))
        return failed(payload, exc.reason, str(exc))


def _query_loaded(
    fn: WorkflowFn, payload: dict[str, Any], data_dir: str, tenant: str, secrets: Secrets
) -> dict[str, Any]:
    """A query (engine/queries.py): a read-only replay of the journal the runner kept,
    then the handler; env.db is a read-only connection (never created here), the output
    store only reads, and nothing else of the advance's machinery is given."""
    ask, inst = payload[QUERY], payload["instance"]
    path = Path(data_dir) / DATABASE
    try:
        db = TenantDatabase(path if path.exists() else ":memory:", read_only=True)
    except DatabaseError as exc:
        return query_failed(payload, "QueryUnavailable", f"env.db could not be opened: {exc}")
    try:
        answer = query(
            fn,
            str(ask.get("name")),
            ask.get("args") or [],
            journal=load_journal(payload.get("journal", [])),
            params=inst.get("params"),
            instance_id=inst["id"],
            started_at=parse_time(inst["startedAt"]),
            tenant=tenant,
            db=db,
            defaults=defaults_from_wire(payload["defaults"]),
            limits=limits_from_wire(payload["limits"]),
            offload=SqliteOutputStore(db),
            secrets=secrets,
            epoch=int(inst.get("epoch") or 0),
        )
        return {QUERY: answer.to_wire()}
    except QueryError as exc:
        return query_failed(payload, exc.reason, str(exc))
    except (SystemExit, KeyboardInterrupt) as exc:  # tenant code tried to end the process
        return query_failed(payload, "QueryFailed", f"workflow code raised {exc!r}")
    finally:
        db.close()


def query_failed(payload: dict[str, Any], name: str, message: str) -> dict[str, Any]:
    """A query's answer that is an error (no value)."""
    asked = payload.get(QUERY) or {}
    return {
        QUERY: {
            "name": str(asked.get("name")),
            "error": {"name": name, "message": message},
            "registered": [],
        }
    }


def _run_loaded(
    fn: WorkflowFn,
    payload: dict[str, Any],
    data_dir: str,
    tenant: str,
    report: Callable[[str, int], None] | None,
    secrets: Secrets,
    vouch_for: Callable[[str, str], None] | None,
    on_lines: Callable[[Lines], None] | None,
    ready: Ready | None,
) -> dict[str, Any]:
    rev = payload["revision"]
    storage = payload.get("storage") or {}
    max_bytes, ops_per_second = storage.get("maxBytes"), storage.get("opsPerSecond")
    path = Path(data_dir) / DATABASE
    db = ready.database(path) if ready else None
    if db is None:
        db = TenantDatabase(path, max_bytes=max_bytes, ops_per_second=ops_per_second)
    else:
        db.limit(max_bytes=max_bytes, ops_per_second=ops_per_second)
    inst = payload["instance"]
    journal = load_journal(payload.get("journal", []))
    try:
        epoch = inst.get("epoch")
        results = SqliteStepResults(
            db,
            vouch.run_key(inst),
            persisted={r.name for r in journal if r.state is StepState.COMPLETE},
            # only what the runner vouched for this run is recalled; no runner, nothing
            vouched=vouch.vouched_from_wire(payload.get(vouch.VOUCHED)) if vouch_for else None,
            vouch=vouch_for,
        )
        result = advance(
            fn,
            journal=journal,
            params=inst.get("params"),
            instance_id=inst["id"],
            started_at=parse_time(inst["startedAt"]),
            inbox=inbox_from_wire(payload.get("inbox", [])),
            tenant=tenant,
            db=db,
            defaults=defaults_from_wire(payload["defaults"]),
            limits=limits_from_wire(payload["limits"]),
            offload=SqliteOutputStore(db),
            on_attempt=report,
            lost_attempts=payload.get("lostAttempts") or {},
            results=results,
            secrets=secrets,
            epoch=int(epoch or 0),
            children=child_results_from_wire(payload.get("children") or {}),
            declared_attributes=frozenset(rev.get(ATTRIBUTES) or ()),
            on_lines=on_lines,
            loop=ready.loop if ready else None,
        )
        # the store's size as the advance left it: Tenant.status.usage.storageBytes (tenant
        # code could forge it: it is a figure shown, never a limit enforced)
        answer = {**advance_to_wire(result), STORAGE_BYTES: db.size_bytes()}
        rejected = [
            {"record": "stepResult", "step": step, "problem": problem}
            for step, problem in results.rejected
        ] + answer.get(vouch.REJECTED, [])
        if rejected:  # ignored as absent; the runner and the operator report them
            answer[vouch.REJECTED] = rejected
        return answer
    except (SystemExit, KeyboardInterrupt) as exc:  # tenant code tried to end the process
        return failed(payload, type(exc).__name__, f"workflow code raised {exc!r} in run()")
    finally:
        db.close()


def failed(payload: dict[str, Any], name: str, message: str) -> dict[str, Any]:
    """An Errored outcome that keeps the journal it was given."""
    return advance_to_wire(
        Advance(
            journal=load_journal(payload.get("journal", [])),
            outcome=Errored({"name": name, "message": message}),
            changed=False,
        )
    )
