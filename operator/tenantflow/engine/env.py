"""The `env` argument of `run`: the tenant's database, identity, and a replay-aware logger."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenantflow.durations import format_time


@dataclass
class WorkflowLogger:
    """`env.log`: structured lines collected per advance; silent while replaying old steps."""

    now: Callable[[], dt.datetime]
    replaying: Callable[[], bool]
    lines: list[dict[str, Any]] = field(default_factory=list)

    def _emit(self, level: str, message: str, fields: dict[str, Any]) -> None:
        if not self.replaying():
            self.lines.append(
                {"ts": format_time(self.now()), "level": level, "message": str(message), **fields}
            )

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
