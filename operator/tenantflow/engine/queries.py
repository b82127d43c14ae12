"""Queries (issue 36, item 7): read a value a workflow exposes without changing it.

Tenant code registers a handler while it runs, as Temporal's query handlers:

    done = 0
    step.query("progress", lambda: {"done": done, "total": len(items)})

A query is answered by a *read-only replay* (`executor.query`): `run()` is replayed from
the journal exactly as an advance would, but it never starts a step body, never sleeps,
never takes an event, never records anything; it stops where the replay would have to
do something new. The named handler is then called with the query's JSON arguments, and
its JSON value (at most `MAX_RESULT_BYTES`) is the answer. A handler sees its closure's
values as of that point of the journal.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tenantflow import jsonsafe
from tenantflow.engine.errors import EngineError, StepOptionsError

MAX_QUERIES = 32  # handlers one instance may register (status.queries holds their names)
MAX_NAME = 63
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # a URL path segment as it is
MAX_ARGS_BYTES = 16 * 1024  # a query's arguments, as JSON
MAX_ARGS = 16
MAX_RESULT_BYTES = 64 * 1024  # a handler's value, as JSON (a step's inline output is 16 KiB)


class QueryError(EngineError):
    """A query that could not be answered; `reason` names why, the message says how."""

    reason = "QueryFailed"

    def __init__(
        self, message: str, *, reason: str | None = None, registered: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.registered = sorted(registered)

    def wire(self) -> dict[str, Any]:
        return {"name": self.reason, "message": str(self), "registered": self.registered}


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    """What a query returns: `value`, or `error` ({name, message, traceback?}); always
    the names registered at the point the replay stopped."""

    name: str
    value: Any = None
    error: dict[str, Any] | None = None
    registered: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "registered": list(self.registered)}
        if self.error is not None:
            out["error"] = self.error
        else:
            out["value"] = self.value
        return out


def check_name(name: Any) -> str:
    """A query's name, or StepOptionsError saying what a name may be."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise StepOptionsError(
            f"query name {name!r}: 1 to {MAX_NAME} letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return name


def check_args(args: Any) -> list[Any]:
    """A query's arguments: a JSON list of at most MAX_ARGS values, MAX_ARGS_BYTES in all."""
    if not isinstance(args, list | tuple) or len(args) > MAX_ARGS:
        raise QueryError(
            f"a query's arguments are a JSON list of at most {MAX_ARGS} values",
            reason="BadQueryArguments",
        )
    try:
        data = jsonsafe.dumps(list(args))
    except jsonsafe.UnsafeJSON as exc:
        raise QueryError(f"a query's arguments: {exc}", reason="BadQueryArguments") from None
    if len(data) > MAX_ARGS_BYTES:
        raise QueryError(
            f"a query's arguments are {len(data)} bytes of JSON, over {MAX_ARGS_BYTES}",
            reason="BadQueryArguments",
        )
    return list(jsonsafe.loads(data))


class ForeignHandler:
    """A handler that lives in another runtime (a TypeScript workflow's, in its Deno
    process): the engine registers one in the workflow's stead and awaits its answer. Tenant
    code cannot make one (a Python handler that returns an awaitable is refused); its
    `answer` is the engine's own round trip."""

    async def answer(self, args: list[Any]) -> Any:
        raise NotImplementedError

    def __call__(self, *args: Any) -> Any:  # `callable()`: it is one
        raise TypeError("a foreign query handler is answered through answer(), not called")


async def call(
    handlers: dict[str, Callable[..., Any]],
    name: str,
    args: list[Any],
    error: Callable[[BaseException], dict[str, Any]],
) -> QueryAnswer:
    """Call the handler `name` with `args`; its value checked (plain JSON, within the
    cap), or the error that says why not. `error` turns an exception of tenant code into
    {name, message, traceback?} (masked, cut)."""
    registered = tuple(sorted(handlers))
    handler = handlers.get(name)
    if handler is None:
        known = ", ".join(registered) if registered else "none so far"
        return QueryAnswer(
            name,
            error={
                "name": "UnknownQuery",
                "message": f"this instance has no query {name!r} (registered: {known}); "
                "a handler exists once run() has called step.query for it",
            },
            registered=registered,
        )
    try:
        value = (
            await handler.answer(args) if isinstance(handler, ForeignHandler) else handler(*args)
        )
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()
            raise TypeError(
                "a query handler must return its value, not an awaitable: use a plain "
                "function (def or lambda), not async def"
            )
        data = jsonsafe.dumps(value)
    except jsonsafe.UnsafeJSON as exc:
        return _failed(name, registered, "QueryResultNotJSON", f"its value: {exc}")
    except (Exception, SystemExit, KeyboardInterrupt) as exc:  # tenant code's sys.exit too
        err = error(exc)
        message = f"query {name!r} raised {err['name']}: {err['message']}"
        return QueryAnswer(
            name,
            error={**err, "name": "QueryFailed", "message": message},
            registered=registered,
        )
    if len(data) > MAX_RESULT_BYTES:
        return _failed(
            name,
            registered,
            "QueryResultTooLarge",
            f"its value is {len(data)} bytes of JSON, over {MAX_RESULT_BYTES}: return a "
            "summary (a query is for a small view of the instance's state)",
        )
    return QueryAnswer(name, value=jsonsafe.loads(data), registered=registered)


def _failed(name: str, registered: tuple[str, ...], reason: str, why: str) -> QueryAnswer:
    return QueryAnswer(
        name, error={"name": reason, "message": f"query {name!r}: {why}"}, registered=registered
    )
