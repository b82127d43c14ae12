"""The `env` argument of `run`: the tenant's database, identity, and a replay-aware logger."""

from __future__ import annotations

import datetime as dt
import io
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


@dataclass
class WorkflowLogger:
    """`env.log`: structured lines collected per advance; silent while replaying old steps.

    Fields stay under their own key (`fields`), never merged into the line, so a field
    named like one of the operator's own (`tenant`, `level`, `logger`) cannot forge or
    break its log record. A field that is not JSON raises here, at the caller's line.
    """

    now: Callable[[], dt.datetime]
    replaying: Callable[[], bool]
    lines: list[dict[str, Any]] = field(default_factory=list)
    printed: int = 0  # output lines of this advance, kept or not
    kept_bytes: int = 0
    dropped: int = 0

    def output(self, stream: str, text: str) -> None:
        """One line tenant code printed (silent while replaying, as env.log): its step's
        attempt if printed inside one. Past MAX_OUTPUT_LINES, only counted."""
        if self.replaying():
            return
        text = text[:MAX_LOG_LINE_BYTES]
        if self.printed >= MAX_OUTPUT_LINES or self.kept_bytes + len(text) > MAX_OUTPUT_BYTES:
            self.dropped += 1
            return
        self.printed += 1
        self.kept_bytes += len(text)
        self._line(stream, text, {})

    def output_done(self) -> None:
        """The marker for what the caps dropped, once, at the end of the advance."""
        if self.dropped:
            self._line("output", DROPPED.format(n=self.dropped), {})

    def _line(self, level: str, message: str, fields: dict[str, Any]) -> None:
        line: dict[str, Any] = {"ts": format_time(self.now()), "level": level, "message": message}
        if step := _step.get():  # a line inside a step belongs to that step's attempt
            line |= {"step": step, "attempt": _attempt.get()}
        self.lines.append({**line, "fields": fields})

    def _emit(self, level: str, message: str, fields: dict[str, Any]) -> None:
        if self.replaying():
            return
        try:
            size = len(jsonsafe.dumps([str(message), fields]))
        except jsonsafe.UnsafeJSON as exc:
            raise TypeError(f"env.log.{level}: a field is not plain JSON ({exc})") from None
        logged = len(self.lines) - self.printed
        if logged >= MAX_LOG_LINES or size > MAX_LOG_LINE_BYTES:
            return
        self._line(level, str(message), fields)

    def debug(self, message: str, **fields: Any) -> None:
        self._emit("debug", message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._emit("info", message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._emit("warning", message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._emit("error", message, fields)


class Printed(io.TextIOBase):
    """sys.stdout or sys.stderr while tenant code runs: each line becomes an output line
    of the step that printed it (the context variable of the task that wrote it)."""

    def __init__(self, logger: WorkflowLogger, stream: str) -> None:
        self.logger, self.stream, self.pending = logger, stream, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.logger.output(self.stream, line)
        if len(self.pending) > MAX_LOG_LINE_BYTES:  # a line without end: cut into lines
            self.logger.output(self.stream, self.pending)
            self.pending = ""
        return len(text)

    def finish(self) -> None:
        if self.pending:
            self.logger.output(self.stream, self.pending)
            self.pending = ""


@dataclass
class WorkflowEnv:
    db: Any
    tenant: str
    instance_id: str
    log: WorkflowLogger
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: Secrets(None))
