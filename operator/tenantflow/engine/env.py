"""The `env` argument of `run`: the tenant's database, identity, and a replay-aware logger."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tenantflow import jsonsafe
from tenantflow.durations import format_time
from tenantflow.engine.secrets import Secrets
from tenantflow.sdk.types import _attempt, _step

MAX_LOG_LINES = 100  # per advance; later lines are dropped
MAX_LOG_LINE_BYTES = 4096


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

    def _emit(self, level: str, message: str, fields: dict[str, Any]) -> None:
        if self.replaying():
            return
        try:
            size = len(jsonsafe.dumps([str(message), fields]))
        except jsonsafe.UnsafeJSON as exc:
            raise TypeError(f"env.log.{level}: a field is not plain JSON ({exc})") from None
        if len(self.lines) >= MAX_LOG_LINES or size > MAX_LOG_LINE_BYTES:
            return
        line: dict[str, Any] = {
            "ts": format_time(self.now()),
            "level": level,
            "message": str(message),
        }
        if step := _step.get():  # a line inside a step belongs to that step's attempt
            line |= {"step": step, "attempt": _attempt.get()}
        self.lines.append({**line, "fields": fields})

    def debug(self, message: str, **fields: Any) -> None:
        self._emit("debug", message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._emit("info", message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._emit("warning", message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._emit("error", message, fields)


@dataclass
class WorkflowEnv:
    db: Any
    tenant: str
    instance_id: str
    log: WorkflowLogger
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: Secrets(None))
