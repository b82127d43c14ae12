"""The `env` argument of `run`: the tenant's database, identity, and a replay-aware logger."""

from __future__ import annotations

import datetime as dt
import io
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tenantflow import jsonsafe
from tenantflow.durations import format_time
from tenantflow.engine.secrets import Secrets
from tenantflow.sdk.types import _attempt, _step

MAX_LOG_LINES = 100  # per advance; later lines are dropped
MAX_LOG_LINE_BYTES = 4096
# what tenant code prints (print, sys.stdout/stderr, its subprocesses): lines per advance,
# then one marker line says how many more were dropped
MAX_OUTPUT_LINES = 2000
MAX_OUTPUT_BYTES = 256 * 1024  # and bytes: an answer stays far below its frame's cap
OUTPUT_STREAMS = ("stdout", "stderr", "output")  # output: a subprocess's, both streams
MAX_ANSWER_LINES = MAX_LOG_LINES + 2 * (MAX_OUTPUT_LINES + 1)  # env.log, print, subprocesses
DROPPED = "[tenantflow] {n} more lines of output in this advance were dropped"
# streamed (the sandbox's worker hands lines to its runner in batches as they come, so they
# never sit in the answer): what a CI step prints fits, up to these per advance
MAX_STREAMED_LINES = 200_000
MAX_STREAMED_BYTES = 16 * 1024 * 1024
STREAM_BATCH = 500  # lines per batch, at most
STREAM_BATCH_BYTES = 1024 * 1024  # and about this much text (its frame stays far below 8 MiB)
STREAM_EVERY = 1.0  # seconds: what a quiet step printed leaves by then (`flush`)
MAX_STREAMED_ADVANCE_LINES = MAX_LOG_LINES + 2 * (MAX_STREAMED_LINES + 1)
# text and fields of them, as the runner re-builds them (env.log's lines are 4 KiB at most)
MAX_STREAMED_ADVANCE_BYTES = MAX_LOG_LINES * MAX_LOG_LINE_BYTES + 2 * (MAX_STREAMED_BYTES + 4096)
Lines = list[dict[str, Any]]


@dataclass
class WorkflowLogger:
    """`env.log`: structured lines collected per advance; silent while replaying old steps.

    Fields stay under their own key (`fields`), never merged into the line, so a field
    named like one of the operator's own (`tenant`, `level`, `logger`) cannot forge or
    break its log record. A field that is not JSON raises here, at the caller's line.

    With `stream` (the sandbox's worker), every line goes out through it in batches of
    STREAM_BATCH, in order, as it comes, and `lines` keeps none at the end: printed output
    is then capped at MAX_STREAMED_LINES/BYTES per advance instead of the answer's
    MAX_OUTPUT_LINES/BYTES. Lines come from step bodies' threads too: one lock orders them.
    """

    now: Callable[[], dt.datetime]
    replaying: Callable[[], bool]
    stream: Callable[[Lines], None] | None = None
    lines: Lines = field(default_factory=list)
    logged: int = 0  # env.log lines of this advance
    printed: int = 0  # output lines of this advance, kept
    kept_bytes: int = 0
    dropped: int = 0
    closed: bool = False  # the advance ended: a straggling thread's lines are not its
    _batch_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def output(self, stream: str, text: str) -> None:
        """One line tenant code printed (silent while replaying, as env.log): its step's
        attempt if printed inside one. Past the caps, only counted."""
        if self.replaying():
            return
        # a lone surrogate (print of undecodable bytes) is not JSON: replaced, not an error
        text = text[:MAX_LOG_LINE_BYTES].encode("utf-8", "replace").decode()
        most, most_bytes = (
            (MAX_STREAMED_LINES, MAX_STREAMED_BYTES)
            if self.stream
            else (MAX_OUTPUT_LINES, MAX_OUTPUT_BYTES)
        )
        with self._lock:
            if self.closed:
                return
            if self.printed >= most or self.kept_bytes + len(text) > most_bytes:
                self.dropped += 1
                return
            self.printed += 1
            self.kept_bytes += len(text)
            self._line(stream, text, {}, len(text))

    def flush(self) -> None:
        """What is gathered goes out now (streaming only): a step that printed a few lines
        and then works quietly shows them within STREAM_EVERY."""
        with self._lock:
            self._send()

    def output_done(self) -> None:
        """The marker for what the caps dropped, once, at the end of the advance; and the
        last batch out when streaming. Nothing is taken after it."""
        with self._lock:
            if self.closed:
                return
            if self.dropped:
                self._line("output", DROPPED.format(n=self.dropped), {}, 0)
            self._send()
            self.closed = True

    def _line(self, level: str, message: str, fields: dict[str, Any], size: int) -> None:
        """Under the lock; `size`: the line's text and fields as JSON, about."""
        line: dict[str, Any] = {"ts": format_time(self.now()), "level": level, "message": message}
        if step := _step.get():  # a line inside a step belongs to that step's attempt
            line |= {"step": step, "attempt": _attempt.get()}
        self.lines.append({**line, "fields": fields})
        self._batch_bytes += size
        if len(self.lines) >= STREAM_BATCH or self._batch_bytes >= STREAM_BATCH_BYTES:
            self._send()

    def _send(self) -> None:
        """Under the lock: the gathered lines out, when streaming."""
        if self.stream and self.lines:
            batch, self.lines, self._batch_bytes = self.lines, [], 0
            self.stream(batch)

    def emit(self, level: str, message: str, fields: dict[str, Any]) -> None:
        """One env.log line at `level`, its fields as a dict (the debug/info/warning/error
        methods take them as keywords; engine/typescript.py's may be named `message`)."""
        if self.replaying():
            return
        text = str(message)  # tenant code (a __str__ may log): never under the lock
        try:
            dumped = jsonsafe.dumps([text, fields])
        except jsonsafe.UnsafeJSON as exc:
            raise TypeError(f"env.log.{level}: a field is not plain JSON ({exc})") from None
        if len(dumped) > MAX_LOG_LINE_BYTES:
            return
        kept = jsonsafe.loads(dumped)[1]  # a copy: the caller may change its dict later
        with self._lock:
            if self.closed or self.logged >= MAX_LOG_LINES:
                return
            self.logged += 1
            self._line(level, text, kept, len(dumped))

    def debug(self, message: str, **fields: Any) -> None:
        self.emit("debug", message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self.emit("info", message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self.emit("warning", message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self.emit("error", message, fields)


class Printed(io.TextIOBase):
    """sys.stdout or sys.stderr while tenant code runs: each line becomes an output line
    of the step that printed it (the context variable of the task that wrote it).

    A line is gathered per thread: print() writes its text and its newline in two calls,
    and step bodies printing at once in their threads must not splice each other's lines
    (nor give a line to the wrong step)."""

    def __init__(self, logger: WorkflowLogger, stream: str) -> None:
        self.logger, self.stream = logger, stream
        self.pending: dict[int, str] = {}

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        me = threading.get_ident()
        *lines, rest = (self.pending.pop(me, "") + text).split("\n")
        for line in lines:
            self.logger.output(self.stream, line)
        if len(rest) > MAX_LOG_LINE_BYTES:  # a line without end: cut into lines
            self.logger.output(self.stream, rest)
        elif rest:
            self.pending[me] = rest
        return len(text)

    def finish(self) -> None:
        for me in list(self.pending):
            rest = self.pending.pop(me, None)  # a straggling thread may take its own
            if rest:
                self.logger.output(self.stream, rest)


@dataclass
class WorkflowEnv:
    db: Any
    tenant: str
    instance_id: str
    log: WorkflowLogger
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: Secrets(None))
