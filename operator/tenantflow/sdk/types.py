"""Type hints for workflow authors: the `step` and `env` arguments of `run`."""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

_attempt: contextvars.ContextVar[int] = contextvars.ContextVar("tenantflow_attempt", default=0)
# the step whose attempt is running here ("" outside a step): what its log lines belong to
_step: contextvars.ContextVar[str] = contextvars.ContextVar("tenantflow_step", default="")

# {"limit": 3, "delay": "2s", "backoff": "exponential", "maxDelay": "1m"}
Retries = Mapping[str, Any]
Duration = str | float | dt.timedelta


def current_attempt() -> int:
    """Inside a `step.do` callable: the 1-based attempt number (0 outside a step)."""
    return _attempt.get()


@dataclass(frozen=True, slots=True)
class RollbackContext:
    """What a rollback (`step.do(..., rollback=undo)`) is called with: `undo(ctx)`.

    `output` is the step's recorded output (what the workflow got back from it), `error`
    what triggered the compensation ({"name", "message", "step"?}: the uncaught error, or
    {"name": "Terminated", ...} for `tenantflow terminate --rollback`), `step` the step's
    name, `attempt` this rollback attempt (1-based), `instance_id` and `params` (the
    instance's event payload) its context."""

    step: str
    output: Any
    error: dict[str, Any]
    attempt: int
    instance_id: str
    params: Any = None


Rollback = Callable[[RollbackContext], Any] | Callable[[RollbackContext], Awaitable[Any]]


class Step(Protocol):
    async def do(
        self,
        name: str,
        fn: Callable[[], Any] | Callable[[], Awaitable[Any]],
        *,
        retries: Retries | None = None,
        timeout: Duration | None = None,
        rollback: Rollback | None = None,
        rollback_retries: Retries | None = None,
        rollback_timeout: Duration | None = None,
    ) -> Any: ...

    async def sleep(self, name: str, duration: Duration) -> None: ...

    async def sleep_until(self, name: str, when: str | dt.datetime) -> None: ...

    async def wait_for_event(
        self, name: str, *, type: str, timeout: Duration | None = None
    ) -> dict[str, Any]: ...

    async def child(
        self, name: str, definition: str, params: Any = None, *, revision: int | None = None
    ) -> Any: ...

    async def set_attributes(
        self, values: Mapping[str, str | int | float | bool | None] | None = None, /, **more: Any
    ) -> None:
        """Set search attributes from the code: `await step.set_attributes(status="tests-
        passed", coverage=81)` (a dict for names that are not identifiers; None removes
        one). Only names the definition declares in spec.searchAttributes; the instance
        carries them as labels once the advance is recorded (`kubectl get wfi -l
        status=tests-passed`, `tenantflow list -l ...`). Not a step: nothing is journaled,
        each replay sets them again, and the last call for a name wins."""
        ...

    def query(self, name: str, handler: Callable[..., Any]) -> None:
        """Expose a value: `tenantflow query INSTANCE name` calls `handler(*args)` after a
        read-only replay of the journal (nothing runs, nothing is recorded) and answers
        with its JSON value. Call it early in run(); the handler reads run()'s variables
        as of the point the journal reaches. Plain functions only (not async)."""
        ...


class Database(Protocol):
    def execute(self, sql: str, params: Any = ()) -> int: ...
    def executemany(self, sql: str, rows: Any) -> int: ...
    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]: ...


class Logger(Protocol):
    def info(self, message: str, **fields: Any) -> None: ...
    def warning(self, message: str, **fields: Any) -> None: ...
    def error(self, message: str, **fields: Any) -> None: ...
    def debug(self, message: str, **fields: Any) -> None: ...


class Env(Protocol):
    db: Database
    tenant: str
    instance_id: str
    log: Logger
