"""The traceback of an exception in tenant code, as its author wants to read it: only the
frames of the tenant's own code (its workflow files, or a test's own module), never the
engine's, the event loop's or an installed library's, which say nothing they can change.

Pure: the caller masks secret values in the text before `keep_end` cuts it, like every
other string that reaches a status.
"""

from __future__ import annotations

import sysconfig
import traceback
from pathlib import Path

import tenantflow
from tenantflow.sdk.errors import NonRetryableError

HEADER = "Traceback (most recent call last):\n"
CUT = "  ... (earlier lines cut)\n"
# what is not the tenant's: this package (engine, SDK), the standard library (asyncio,
# the thread pool a sync step runs in) and installed libraries
_NOT_OWN = tuple(
    sorted(
        {
            str(Path(tenantflow.__file__).parent),
            *(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")),
        }
    )
)


def own_frame(filename: str) -> bool:
    """A frame of tenant code: a workflow module (`<label/steps.py>`) or a file outside
    tenantflow, the standard library and site-packages (`<frozen importlib...>` is not)."""
    if filename.startswith("<"):
        return not filename.startswith("<frozen ")
    return not any(filename == p or filename.startswith(p + "/") for p in _NOT_OWN)


class ForeignError(Exception):
    """An error thrown by tenant code in another language's runtime (engine/typescript.py):
    its own name and stack, already cut to the tenant's frames by that runtime."""

    def __init__(self, name: str, message: str, stack: str | None = None) -> None:
        super().__init__(message)
        self.name, self.stack = name, stack


class ForeignNonRetryableError(ForeignError, NonRetryableError):
    """A NonRetryableError thrown in the other runtime: the step fails at once."""


def error_name(exc: BaseException) -> str:
    """The name an error is recorded under: its class's, or the foreign error's own."""
    return exc.name if isinstance(exc, ForeignError) else type(exc).__name__


def tenant_traceback(exc: BaseException) -> str | None:
    """`exc`'s traceback (its causes and contexts too) with only the tenant's own frames;
    None when it has none (an error the engine raised of its own accord)."""
    if isinstance(exc, ForeignError):
        return exc.stack or None
    formatted = traceback.TracebackException.from_exception(exc)
    if not _keep_own(formatted, set()):
        return None
    return "".join(formatted.format())


def _keep_own(te: traceback.TracebackException, seen: set[int]) -> bool:
    """Drop other frames from `te` and the exceptions chained to it; whether any of the
    tenant's own were left."""
    if id(te) in seen:
        return False
    seen.add(id(te))
    te.stack = traceback.StackSummary.from_list([f for f in te.stack if own_frame(f.filename)])
    found = bool(te.stack)
    for chained in (te.__cause__, te.__context__, *(te.exceptions or ())):
        if chained is not None:
            found = _keep_own(chained, seen) or found
    return found


def keep_end(text: str, limit: int) -> str:
    """At most `limit` characters of a traceback, keeping its end (the innermost frames
    and the exception: what failed), cut where a frame begins (else where a line does)."""
    if len(text) <= limit:
        return text
    room = limit - len(HEADER) - len(CUT)
    tail = text[len(text) - room :]
    start = tail.find("\n  File ")
    start = start if start != -1 else tail.find("\n")
    return HEADER + CUT + (tail[start + 1 :] if start != -1 else tail)
