"""Turn workflow source into a checked `run` callable, with errors that say what to fix."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, cast

from tenantflow.engine.errors import (
    EntrypointMissingError,
    WorkflowImportError,
    WorkflowSignatureError,
    WorkflowSyntaxError,
)

WorkflowFn = Callable[..., Awaitable[Any]]


def load(source: str, entrypoint: str = "run", filename: str = "<workflow>") -> WorkflowFn:
    """Compile and execute `source` as a fresh module and return its checked entrypoint."""
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as exc:
        where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        raise WorkflowSyntaxError(f"{filename} {where}: {exc.msg}") from None
    namespace: dict[str, Any] = {"__name__": "tenantflow_workflow", "__file__": filename}
    try:
        exec(code, namespace)
    except Exception as exc:
        raise WorkflowImportError(
            f"{filename}: importing the workflow raised {type(exc).__name__}: {exc}"
        ) from None
    fn = namespace.get(entrypoint)
    if fn is None:
        defined = sorted(n for n, v in namespace.items() if inspect.iscoroutinefunction(v))
        hint = f"; async functions defined: {', '.join(defined)}" if defined else ""
        raise EntrypointMissingError(
            f"{filename}: no function {entrypoint!r} (spec.entrypoint){hint}. "
            f"Define `async def {entrypoint}(event, step, env)`."
        )
    return check(fn, entrypoint)


def check(fn: Any, name: str = "run") -> WorkflowFn:
    """`fn` must be `async def` taking (event, step) or (event, step, env)."""
    if not inspect.iscoroutinefunction(fn):
        raise WorkflowSignatureError(
            f"{name!r} must be an async function: `async def {name}(event, step, env)`"
        )
    if arity(fn) not in (2, 3):
        raise WorkflowSignatureError(
            f"{name!r} takes {arity(fn)} positional parameter(s); it must take "
            f"(event, step) or (event, step, env)"
        )
    return cast(WorkflowFn, fn)


def arity(fn: Any) -> int:
    """Positional parameters `fn` accepts (3 when it has *args)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 3
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in positional)
