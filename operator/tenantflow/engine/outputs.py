"""Step and run outputs: JSON only, inline up to a cap, larger ones to an offload store."""

from __future__ import annotations

import json
from typing import Any, Protocol

from tenantflow import jsonsafe
from tenantflow.engine.errors import StepOutputError


class OutputStore(Protocol):
    """Where outputs over the inline cap go (the tenant's SQLite store in the cluster).

    `get` raises LookupError (KeyError...) for a record it does not hold, or holds but
    cannot vouch for: the tenant's store is content-addressed and checks the bytes against
    the digest in the ref, which is in the journal, out of tenant code's reach."""

    def put(self, key: str, data: bytes) -> str: ...

    def get(self, ref: str) -> bytes: ...


class StepResults(Protocol):
    """Results of completed steps kept beside the workflow, in the tenant's own store: a
    second guard, so that a step whose result reached the store is recalled, not run
    again, even by an advance that started from a journal older than that result. Tenant
    code can write that store: `recall` returns only what the sandbox's runner vouched for
    (`storage.step_results`)."""

    def recall(self, step: str) -> bytes | None: ...

    def record(self, step: str, data: bytes) -> None: ...


def encode(value: Any, *, what: str) -> bytes:
    """Strict JSON (see `jsonsafe`): what is stored is exactly what every replay reads."""
    try:
        return jsonsafe.dumps(value)
    except jsonsafe.UnsafeJSON as exc:
        raise StepOutputError(
            f"{what} returned a value that cannot be stored as it is ({exc}); return dicts, "
            "lists, strings, numbers within ±2^53, booleans or None, nested at most "
            f"{jsonsafe.MAX_DEPTH} levels"
        ) from None


def store(
    value: Any,
    *,
    what: str,
    key: str,
    cap: int,
    offload: OutputStore | None,
    limit: int = 8 * 1024 * 1024,
) -> tuple[Any, str | None, Any]:
    """(inline, None, seen) or (None, ref, seen) for a value too large to keep inline.

    `seen` is the JSON round-trip of `value` (tuples become lists...), what the workflow gets
    back now, so the first run and every replay see identical values.
    """
    data = encode(value, what=what)
    if len(data) > limit:
        raise StepOutputError(
            f"{what} returned {len(data)} bytes of JSON, over the {limit}-byte output limit; "
            "keep large data in env.db and return a key to it"
        )
    seen = json.loads(data)
    if len(data) <= cap:
        return seen, None, seen
    if offload is None:
        raise StepOutputError(
            f"{what} returned {len(data)} bytes of JSON, over the {cap}-byte inline cap, and "
            "no output store is configured; return less, or write it to env.db"
        )
    return None, offload.put(key, data), seen


class RecordRejected(Exception):
    """A stored record (an offloaded output) that is missing or fails its check: treated
    as absent, and reported (`problem` says why)."""

    def __init__(self, ref: str, problem: str) -> None:
        super().__init__(f"{ref}: {problem}")
        self.ref, self.problem = ref, problem


def fetch(ref: str, offload: OutputStore | None, *, what: str) -> Any:
    """The value stored as `ref`; RecordRejected when the store lacks it or cannot vouch
    for its bytes (tenant code rewrote or deleted it)."""
    if offload is None:
        raise StepOutputError(f"{what}: output is stored as {ref!r} but no output store is set")
    try:
        data = offload.get(ref)
    except LookupError as exc:
        raise RecordRejected(ref, str(exc.args[0]) if exc.args else "not in the store") from None
    try:
        return jsonsafe.loads(data)
    except jsonsafe.UnsafeJSON as exc:  # a store that does not check what it holds
        raise RecordRejected(ref, f"not safe JSON ({exc})") from None
