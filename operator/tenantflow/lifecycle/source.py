"""Checking workflow source without running it (the operator never executes tenant code)."""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceCheck:
    ok: bool
    reason: str = "Valid"
    message: str = "the source compiles and defines its entrypoint"


def sha256(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def check(source: str, entrypoint: str = "run") -> SourceCheck:
    """Parse (not execute) the module; the entrypoint must be a top-level `async def`
    taking (event, step) or (event, step, env)."""
    try:
        tree = ast.parse(source, filename="<workflow>")
    except SyntaxError as exc:
        return SourceCheck(
            False, "SyntaxError", f"line {exc.lineno}, column {exc.offset}: {exc.msg}"
        )
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    fn = funcs.get(entrypoint)
    if fn is None:
        defined = ", ".join(sorted(funcs)) or "none"
        return SourceCheck(
            False,
            "EntrypointMissing",
            f"no top-level function {entrypoint!r} (spec.entrypoint); functions defined: {defined}",
        )
    if not isinstance(fn, ast.AsyncFunctionDef):
        return SourceCheck(
            False,
            "EntrypointSignature",
            f"{entrypoint!r} must be `async def {entrypoint}(event, step, env)`",
        )
    positional = len(fn.args.posonlyargs) + len(fn.args.args)
    if fn.args.vararg is None and positional not in (2, 3):
        return SourceCheck(
            False,
            "EntrypointSignature",
            f"{entrypoint!r} takes {positional} positional parameter(s); it must "
            "take (event, step) or (event, step, env)",
        )
    return SourceCheck(True)
