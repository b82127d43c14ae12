"""TypeScript and JavaScript workflows: tenant code run by Deno, driven by this engine.

One advance of such a workflow is one Deno process (`sdk/typescript/runtime.ts`), a child
of the advance's own worker process: under the same seccomp filter, in the same session
(killed with it at the deadline), the same CPU limit and network policy, with Deno's own
permissions as a second wall (it may read its source and nothing else, run nothing, load
no native code; the network only where the tenant has an egress proxy). The V8 heap is
capped by `--max-old-space-size`: V8 reserves tens of GiB of address space, so the
address-space limit Python advances get cannot apply; the pod's memory limit is the wall
for the rest.

The Deno process decides nothing. Each `step.*` call it makes arrives here as a request
and is served by the very `StepApi` a Python workflow gets: one journal, one set of
replay rules, retries, limits and masking for both languages. A step body runs in Deno
when the engine calls it (`call`), once per attempt, and its JSON result comes back.

Only JSON lines cross, each capped (MAX_MESSAGE_BYTES); what Deno says is never trusted
beyond this advance (it is the tenant's own code: a forged message can only do what that
code could do by itself). While Deno holds control (a message sent and not yet answered
by `idle`) the advance counts as executing, so "nothing can progress" still means what
the executor needs it to mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tenantflow.engine import guest_cache, queries
from tenantflow.engine.env import MAX_LOG_LINE_BYTES, WorkflowEnv
from tenantflow.engine.errors import (
    EngineError,
    EntrypointMissingError,
    WorkflowImportError,
    WorkflowSyntaxError,
)
from tenantflow.engine.step import StepApi
from tenantflow.engine.tracebacks import ForeignError, ForeignNonRetryableError
from tenantflow.sdk.errors import StepError, WaitTimeout
from tenantflow.sdk.types import RollbackContext, _attempt, _step
from tenantflow.vocabulary import PROXY_VARIABLES

EXTENSIONS = {".ts": "typescript", ".mts": "typescript", ".js": "javascript", ".mjs": "javascript"}
FILE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*[.](ts|mts|js|mjs)$")  # [.]: for the CEL rule
MAX_UNREAD_BYTES = 64 * 1024 * 1024  # replies Deno has not read yet, held here at most
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # one line from Deno: a step's output is far smaller
# what a crashed runtime printed last, quoted in its error: its last whole lines within
# this many characters (`Guest._last_words`), from the last LAST_LINES lines of its stderr
MAX_LAST_WORDS = 1024
LAST_LINES = 64
RS = b"\x1e"  # begins each line of the protocol on Deno's stdout
LEVELS = frozenset({"debug", "info", "warning", "error"})
IMPORT_MAP = "import_map.json"  # beside the sources: no module may take that name
PASSED_ON = (*PROXY_VARIABLES, "NO_PROXY", "no_proxy")  # of the worker's environment


def is_guest(main_file: str) -> bool:
    """Whether a revision's main file is TypeScript or JavaScript (run by Deno)."""
    return Path(main_file).suffix in EXTENSIONS


def deno_binary() -> str:
    """The Deno executable: the `deno` wheel's (the sandbox image installs it), else PATH."""
    with contextlib.suppress(ImportError):
        import deno  # type: ignore[import-untyped,unused-ignore]

        found: str = deno.find_deno_bin()
        return found
    on_path = shutil.which("deno")
    if on_path is None:
        raise WorkflowImportError(
            "this sandbox has no Deno runtime for TypeScript/JavaScript workflows "
            "(install the operator package with its `deno` dependency)"
        )
    return on_path


def runtime_dir() -> Path:
    """The SDK's TypeScript files (`tenantflow.ts`, `runtime.ts`)."""
    return Path(str(resources.files("tenantflow.sdk") / "typescript"))


@dataclass(frozen=True)
class GuestCode:
    """A revision's TypeScript/JavaScript files, its main file and entrypoint."""

    files: Mapping[str, str]
    main_file: str
    entrypoint: str = "run"
    label: str = "workflow"
    heap_bytes: int | None = None  # the V8 heap's limit (the advance's memory)
    scratch: str | None = None  # where sources and Deno's cache are kept (None: temp dir)


def prepared(code: GuestCode) -> tuple[Path, Path]:
    """(sources, home): the revision's files in a directory named by their digest, written
    only where they differ (so a change made between advances is undone), and Deno's
    cache beside them. Both outlive the advance: the runtime and the revision are
    transpiled once, not per advance (a fresh cache cost each advance ~15 ms). They are
    the tenant's own files in its own sandbox, read by nothing more privileged."""
    home = Path(code.scratch or tempfile.gettempdir()) / "tenantflow-deno"
    # Web storage (localStorage, the Cache API: no permission needed) is kept in the cache,
    # under location_data: it would be a store outside env.db and the journal, found by
    # every later advance of every instance, which no replay could reproduce, written by
    # code that may write nothing. A file where that directory would be makes each use an
    # error (whatever was put there between advances is removed first).
    storage = home / "cache" / "location_data"
    if not storage.is_file():
        shutil.rmtree(storage, ignore_errors=True)
        storage.parent.mkdir(parents=True, exist_ok=True)
        storage.touch()
    digest = hashlib.sha256(json.dumps(sorted(code.files.items())).encode()).hexdigest()
    sources = home / "src" / digest[:32]
    sources.mkdir(parents=True, exist_ok=True)
    guest_cache.used(sources)
    guest_cache.prune(home)  # what no advance used lately (at most once an hour)
    sdk = runtime_dir()
    imports = {spec: str(sdk / "tenantflow.ts") for spec in SDK_SPECIFIERS}
    wanted = {**code.files, IMPORT_MAP: json.dumps({"imports": imports})}
    for name, text in wanted.items():
        path, data = sources / name, text.encode()
        with contextlib.suppress(OSError):
            if path.read_bytes() == data:
                continue
        part = sources / f".{name}.{os.getpid()}"
        part.write_bytes(data)
        os.replace(part, path)  # whole, even with another advance of it reading
    return sources, home


def typescript_workflow(code: GuestCode) -> Callable[..., Any]:
    """A `run(event, step, env)` for the executor that runs `code` in Deno."""
    for name in code.files:
        if not FILE_NAME.match(name):
            raise WorkflowImportError(
                f"file {name!r}: a TypeScript/JavaScript workflow file is a name like "
                "helpers.ts (letters, digits, '_'; .ts, .mts, .js or .mjs)"
            )
    if code.main_file not in code.files:
        raise WorkflowImportError(f"no file {code.main_file} (spec.source.main)")

    async def run(event: dict[str, Any], step: StepApi, env: WorkflowEnv) -> Any:
        return await Guest(code, step, env).run(event)

    return run


@dataclass
class Guest:
    """One advance's Deno process and the conversation with it."""

    code: GuestCode
    step: StepApi
    env: WorkflowEnv
    seq: int = 0
    unanswered: set[int] = field(default_factory=set)  # sent, not yet `idle`
    calls: dict[int, tuple[asyncio.Future[Any], str, int]] = field(default_factory=dict)
    done: asyncio.Future[Any] | None = None
    proc: subprocess.Popen[bytes] | None = None
    _out: bytearray = field(default_factory=bytearray)
    _err: bytearray = field(default_factory=bytearray)
    _stderr_lines: deque[str] = field(default_factory=lambda: deque(maxlen=LAST_LINES))
    _err_cut: bool = False  # the stderr line being read is past the cap: the rest is dropped
    _pending_writes: bytearray = field(default_factory=bytearray)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # the engine's errors sent in replies, by request: one that escapes run() in Deno is
    # raised here as itself (an uncaught StepError reports its step's error, as in Python)
    _replied: dict[int, Exception] = field(default_factory=dict)

    async def run(self, event: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        sources = self._start()
        keeper = asyncio.ensure_future(self._keep())  # ends the process when the advance does
        self._tasks.add(keeper)
        self._send(
            {
                "t": "start",
                "event": event,
                "main": str(sources / self.code.main_file),
                "mainFile": self.code.main_file,
                "root": str(sources),
                "label": self.code.label,
                "entrypoint": self.code.entrypoint,
                "tenant": self.env.tenant,
            }
        )
        return await self.done

    # ------------------------------------------------------------------ the process
    def _start(self) -> Path:
        """Start Deno on the revision's sources (their directory is returned)."""
        src, home = prepared(self.code)
        sdk = runtime_dir()
        env = {
            "HOME": str(home),
            "DENO_DIR": str(home / "cache"),
            "DENO_NO_UPDATE_CHECK": "1",
            "NO_COLOR": "1",
            "PATH": "/usr/bin:/bin",
            **{k: v for k, v in os.environ.items() if k in PASSED_ON},
        }
        flags = [
            "--no-prompt",
            "--no-config",
            "--no-lock",
            "--no-remote",
            "--no-npm",
            "--cached-only",
            f"--import-map={src / IMPORT_MAP}",
            f"--allow-read={src},{sdk}",
        ]
        if any(k in env for k in PROXY_VARIABLES):
            flags.append("--allow-net")  # through the egress proxy; the network policy holds
        if self.code.heap_bytes:
            flags.append(f"--v8-flags=--max-old-space-size={max(16, self.code.heap_bytes >> 20)}")
        self.proc = subprocess.Popen(
            [deno_binary(), "run", *flags, str(sdk / "runtime.ts")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=home,
            env=env,
            close_fds=True,
        )
        loop = asyncio.get_running_loop()
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            os.set_blocking(pipe.fileno(), False)
        loop.add_reader(self.proc.stdout.fileno(), self._readable)
        loop.add_reader(self.proc.stderr.fileno(), self._stderr_readable)
        return src

    async def _keep(self) -> None:
        try:
            await asyncio.get_running_loop().create_future()  # until the advance ends
        finally:
            self._stop()

    def _stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            loop = asyncio.get_running_loop()
            assert proc.stdin and proc.stdout and proc.stderr
            for pipe in (proc.stdout, proc.stderr):
                loop.remove_reader(pipe.fileno())
            loop.remove_writer(proc.stdin.fileno())
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    pipe.close()
        self._release()

    # ------------------------------------------------------------------ control
    def _send(self, msg: dict[str, Any]) -> None:
        if self.proc is None or self.proc.stdin is None:
            return
        # encoded before it counts as sent: a value that is not JSON (a BLOB env.db read)
        # raises here, and a number never sent would be awaited as unanswered for ever
        line = json.dumps({**msg, "seq": self.seq + 1}).encode() + b"\n"
        self.seq += 1
        if not self.unanswered:
            self.step.hold(True)  # Deno has control: the advance is not idle
        self.unanswered.add(self.seq)
        self._pending_writes += line
        self._flush()
        if len(self._pending_writes) > MAX_UNREAD_BYTES:  # Deno asks and does not read
            self._fail_all(
                ForeignError(
                    "ProtocolError",
                    f"the TypeScript runtime left more than {MAX_UNREAD_BYTES} bytes of the "
                    "engine's replies unread (code that asks and never yields?)",
                )
            )
            self._stop()

    def _flush(self) -> None:
        if self.proc is None or self.proc.stdin is None:
            return
        fd = self.proc.stdin.fileno()
        try:
            while self._pending_writes:
                n = os.write(fd, self._pending_writes)
                del self._pending_writes[:n]
        except BlockingIOError:
            asyncio.get_running_loop().add_writer(fd, self._flush)
            return
        except (BrokenPipeError, OSError):
            self._pending_writes.clear()
        asyncio.get_running_loop().remove_writer(fd)

    def _release(self) -> None:
        if self.unanswered:
            self.unanswered.clear()
            self.step.hold(False)

    # ------------------------------------------------------------------ reading
    def _readable(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            data = os.read(self.proc.stdout.fileno(), 1 << 20)
        except BlockingIOError:
            return
        if not data:
            self._exited()
            return
        self._out += data
        while (nl := self._out.find(b"\n")) >= 0:
            line = bytes(self._out[:nl])
            del self._out[: nl + 1]
            try:
                self._line(line)
            except Exception as exc:
                # a message of a known kind and the wrong shape (only tenant code writes
                # one: an `idle` numbered by a list): an error of this advance. Raised in
                # this reader, it printed the engine's traceback into the tenant's logs and
                # left the lines read with it waiting, until the deadline if no more came.
                # (Its name only: an exception's text may quote a cut piece of the line.)
                self._fail_all(
                    ForeignError(
                        "ProtocolError",
                        "the TypeScript runtime sent a message the engine cannot take "
                        f"({type(exc).__name__})",
                    )
                )
                self._stop()
                return
        if len(self._out) > MAX_MESSAGE_BYTES:
            self._fail_all(
                ForeignError(
                    "RuntimeError",
                    f"the TypeScript runtime wrote a line longer than {MAX_MESSAGE_BYTES} bytes",
                )
            )
            self._stop()

    def _stderr_readable(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        try:
            data = os.read(self.proc.stderr.fileno(), 1 << 16)
        except BlockingIOError:
            return
        if not data:
            asyncio.get_running_loop().remove_reader(self.proc.stderr.fileno())
            return
        self._err += data
        while (nl := self._err.find(b"\n")) >= 0:
            line, cut = bytes(self._err[:nl]), self._err_cut
            del self._err[: nl + 1]
            self._err_cut = False
            if not cut:
                self._stderr_line(line.decode("utf-8", "replace"))
        if len(self._err) > MAX_LOG_LINE_BYTES:
            # a line past the cap: its beginning is the line, the rest of it is dropped up
            # to its newline, as the cap drops it. Passed on as lines of their own, the
            # rest began wherever a 64 KiB read ended, inside a secret perhaps: the end of a
            # secret at the start of a line is masked by no one (engine/masking.py)
            if not self._err_cut:
                self._stderr_line(self._err.decode("utf-8", "replace"))
            self._err_cut = True
            self._err.clear()

    def _stderr_line(self, line: str) -> None:
        """A line the runtime wrote to stderr: an output line, and kept for `_last_words`."""
        self._stderr_lines.append(line[: MAX_LAST_WORDS + 1])
        self._output("stderr", line, None)

    def _line(self, line: bytes) -> None:
        if not line.startswith(RS):  # the tenant's own writes to stdout
            self._output("stdout", line.decode("utf-8", "replace"), None)
            return
        try:
            msg = json.loads(line[1:])
        except (ValueError, RecursionError):  # not JSON, or nested past what json reads
            self._output("stdout", line.decode("utf-8", "replace"), None)
            return
        if isinstance(msg, dict):
            self._message(msg)

    def _message(self, msg: dict[str, Any]) -> None:
        kind = msg.get("t")
        if kind == "idle":
            seq = msg.get("seq")
            if seq in self.unanswered:  # (a forged or repeated one changes nothing)
                self.unanswered.discard(seq)
                if not self.unanswered:
                    self.step.hold(False)
        elif kind == "req":
            task = asyncio.ensure_future(self._serve(msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "ret":
            entry = self.calls.get(msg.get("call"))  # type: ignore[arg-type]
            _settle(entry[0] if entry else None, msg, self._foreign)
        elif kind == "done":
            _settle(self.done, msg, loading_error if msg.get("loading") else self._foreign)
        elif kind == "log":
            self._log(msg)
        elif kind == "out":
            self._output(str(msg.get("stream")), str(msg.get("text")), msg.get("call"))

    def _exited(self) -> None:
        """Its stdout closed: it has ended (tenant code cannot close the descriptor itself:
        Deno.stdout.close() and node:fs closeSync(1) leave Deno's own copy open)."""
        assert self.proc is not None
        code = self.proc.wait()
        printed = "\n".join(self._stderr_lines)
        why = (
            "ran out of memory (its V8 heap is capped at the advance's memory)"
            if "heap out of memory" in printed or "Fatal process out of memory" in printed
            else f"exited ({code})"
        )
        message = f"the TypeScript runtime {why}: {self._last_words()}".strip()
        self._fail_all(ForeignError("RuntimeExited", message))
        self._stop()

    def _last_words(self) -> str:
        """What it printed last (an uncaught error, a panic), for its error: the last whole
        lines within MAX_LAST_WORDS characters, or the beginning of the last one. Never cut
        at the start: it kept the last 1,024 characters, and the end of a secret left at
        the start is masked by no one (the runner masks whole values, and a value's
        beginning left at the end of a cut string: engine/masking.py)."""
        kept: list[str] = []
        size = 0
        for line in reversed(self._stderr_lines):
            if size + len(line) > MAX_LAST_WORDS:
                if not kept:
                    kept.append(line[:MAX_LAST_WORDS])
                break
            kept.append(line)
            size += len(line) + 1
        return "\n".join(reversed(kept)).strip()

    def _fail_all(self, err: ForeignError) -> None:
        for future, _, _ in self.calls.values():
            if not future.done():
                future.set_exception(err)
        if self.done is not None and not self.done.done():
            self.done.set_exception(err)

    def _foreign(self, error: Any) -> Exception:
        """An error from Deno: the engine's own when it is one it replied with (and the
        workflow let it escape), else the TypeScript error as it was thrown."""
        origin = error.get("origin") if isinstance(error, dict) else None
        replied = self._replied.get(origin) if isinstance(origin, int) else None
        return replied if replied is not None else foreign(error)

    # ------------------------------------------------------------------ what Deno asks
    async def _serve(self, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        try:
            value = await self._op(msg)
            reply: dict[str, Any] = {"t": "reply", "id": rid, "ok": True, "value": value}
        except (StepError, WaitTimeout) as exc:
            if isinstance(rid, int):
                self._replied[rid] = exc
            reply = {"t": "reply", "id": rid, "ok": False, "error": _caught(exc)}
        except EngineError as exc:  # fatal all the same (state.fail): Deno hears why
            error = {"kind": "EngineError", "name": exc.reason, "message": str(exc)}
            reply = {"t": "reply", "id": rid, "ok": False, "error": error}
        except Exception as exc:  # env.db's and env.secrets' errors, bad arguments
            error = {"kind": "Error", "name": type(exc).__name__, "message": str(exc)}
            reply = {"t": "reply", "id": rid, "ok": False, "error": error}
        try:
            self._send(reply)
        except (TypeError, ValueError) as exc:  # a database value that is not JSON
            error = {"kind": "Error", "name": "TypeError", "message": f"not JSON: {exc}"}
            self._send({"t": "reply", "id": rid, "ok": False, "error": error})

    async def _op(self, msg: dict[str, Any]) -> Any:
        """Serve one request with the engine's own step API (it checks the arguments)."""
        arg: Callable[[str], Any] = msg.get
        op, name, step = arg("op"), str(arg("name")), self.step
        if op == "do":
            return await self._do(msg)
        if op == "sleep":
            return await step.sleep(name, arg("duration"))
        if op == "sleepUntil":
            return await step.sleep_until(name, arg("when"))
        if op == "waitForEvent":
            return await step.wait_for_event(name, type=arg("type"), timeout=arg("timeout"))
        if op == "child":
            return await step.child(
                name,
                arg("definition"),
                arg("params"),
                revision=arg("revision"),
                source=arg("source"),
            )
        if op == "setAttributes":
            return await step.set_attributes(msg.get("values"))
        if op == "query":
            return step.query(name, _GuestQuery(self, int(msg["id"]), name))
        return self._env_op(op, name, msg)

    def _env_op(self, op: Any, name: str, msg: dict[str, Any]) -> Any:
        """Serve a request for `env`: its database or a secret."""
        if op == "db":
            params = msg.get("params") or []
            if msg.get("method") == "execute":
                return self.env.db.execute(str(msg.get("sql")), params)
            return self.env.db.query(str(msg.get("sql")), params)
        if op == "secret":
            return dict(self.env.secrets[name])
        raise ValueError(f"unknown request {op!r}")

    async def _do(self, msg: dict[str, Any]) -> Any:
        rid, name = int(msg["id"]), str(msg.get("name"))
        config = msg.get("config") or {}
        undo_config = msg.get("rollback")

        async def body() -> Any:
            return await self._call(rid, "do", name, None)

        async def undo(ctx: RollbackContext) -> Any:
            wire = {
                "step": ctx.step, "output": ctx.output, "error": ctx.error,
                "attempt": ctx.attempt, "instanceId": ctx.instance_id, "params": ctx.params,
            }  # fmt: skip
            return await self._call(rid, "rollback", name, wire)

        return await self.step.do(
            name,
            body,
            retries=config.get("retries"),
            timeout=config.get("timeout"),
            rollback=undo if isinstance(undo_config, dict) else None,
            rollback_retries=(undo_config or {}).get("retries"),
            rollback_timeout=(undo_config or {}).get("timeout"),
        )

    async def _call(self, rid: int, kind: str, name: str, ctx: Any) -> Any:
        """Run a step body (or rollback) in Deno: one attempt, awaited here."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.seq += 1
        call = self.seq  # the call number: Deno attributes the body's output lines by it
        attempt = _attempt.get()
        # what its lines belong to: the attempt's own step (a rollback's is rollback:NAME)
        self.calls[call] = (future, _step.get() or name, attempt)
        self._send({"t": "call", "id": rid, "call": call, "kind": kind, "step": name,
                    "attempt": attempt, "ctx": ctx})  # fmt: skip
        try:
            return await future
        finally:
            self.calls.pop(call, None)

    # ------------------------------------------------------------------ lines
    @contextlib.contextmanager
    def _attributed(self, call: Any) -> Iterator[None]:
        """Lines logged in the block belong to the step attempt whose body runs as `call`
        (none: outside any step), as a Python body's lines belong to its own."""
        entry = self.calls.get(call) if isinstance(call, int) else None
        name, attempt = (entry[1], entry[2]) if entry else ("", 0)
        s_token, a_token = _step.set(name), _attempt.set(attempt)
        try:
            yield
        finally:
            _step.reset(s_token)
            _attempt.reset(a_token)

    def _output(self, stream: str, text: str, call: Any) -> None:
        stream = stream if stream in ("stdout", "stderr") else "stdout"
        with self._attributed(call):
            for line in text.split("\n"):
                self.env.log.output(stream, line)

    def _log(self, msg: dict[str, Any]) -> None:
        level, fields = str(msg.get("level")), msg.get("fields")
        if level not in LEVELS or not isinstance(fields, dict):
            return
        # the fields as a dict, not as keyword arguments: a TypeScript field may be named
        # `message` or `self`; a line the logger refuses (a field past 2^53, a lone
        # surrogate: not plain JSON) is dropped, as a line past the caps is
        with self._attributed(msg.get("call")), contextlib.suppress(TypeError):
            self.env.log.emit(level, str(msg.get("message")), fields)


class _GuestQuery(queries.ForeignHandler):
    """A query handler registered by `step.query` in TypeScript: answering it calls the
    handler in Deno (request `rid` registered it) with the query's arguments."""

    def __init__(self, guest: Guest, rid: int, name: str) -> None:
        self.guest, self.rid, self.name = guest, rid, name

    async def answer(self, args: list[Any]) -> Any:
        return await self.guest._call(self.rid, "query", self.name, args)


SDK_SPECIFIERS = ("tenantflow", "cloudflare:workers", "cloudflare:workflows")


def _settle(
    future: asyncio.Future[Any] | None,
    msg: dict[str, Any],
    error: Callable[[Any], BaseException],
) -> None:
    """A step body's or run()'s end, from Deno: its value, or its error as `error` makes it."""
    if future is None or future.done():
        return
    if msg.get("ok"):
        future.set_result(msg.get("value"))
    else:
        future.set_exception(error(msg.get("error")))


def _caught(exc: StepError | WaitTimeout) -> dict[str, Any]:
    """A step's failure as the workflow catches it in TypeScript."""
    if isinstance(exc, WaitTimeout):
        return {"kind": "WaitTimeout", "step": exc.step, "message": str(exc)}
    return {
        "kind": "StepError",
        "step": exc.step,
        "name": exc.error_name,
        "message": exc.error_message,
        "attempts": exc.attempts,
    }


def foreign(error: Any) -> ForeignError:
    """An error thrown in Deno, as the engine records it (name, message, the TS stack)."""
    err = error if isinstance(error, dict) else {}
    cls = ForeignNonRetryableError if err.get("nonRetryable") else ForeignError
    stack = err.get("stack")
    trace = stack if isinstance(stack, str) else None
    return cls(str(err.get("name") or "Error"), str(err.get("message") or ""), trace)


def loading_error(error: Any) -> EngineError:
    """The module could not be loaded (a syntax error, a missing entrypoint, an import)."""
    err = error if isinstance(error, dict) else {}
    name, message = str(err.get("name") or ""), str(err.get("message") or "")
    if name == "EntrypointMissing":
        return EntrypointMissingError(message)
    if name == "SyntaxError" or message.startswith("SyntaxError: "):  # Deno: a TypeError
        return WorkflowSyntaxError(message.removeprefix("SyntaxError: "))
    return WorkflowImportError(f"importing the workflow module raised {name}: {message}")
