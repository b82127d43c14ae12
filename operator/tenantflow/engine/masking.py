"""Masking known secret values in text that leaves the sandbox, cuts included.

Pure functions shared by the engine (which masks before it cuts an error message or a
log line) and the runner (which masks every string of every answer, whatever the engine
in tenant code's process did). Two rules make a cut safe:

- a string is masked *before* it is cut, so a cut never splits a whole value;
- a string that arrives already cut (by code the masker does not trust) may end with the
  beginning of a value: a trailing fragment of `SHORTEST` characters or more is masked
  too. Shorter fragments are left: masking every string that ends in a value's first
  letter would garble ordinary text, and three characters say little of a value.

This is a guard against accidents (a token in an exception message), not against tenant
code that wants to leak its own secret: an encoded value passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MASK = "***"
SHORTEST = 4  # shorter values (and fragments) would mask ordinary text everywhere


def secret_values(secrets: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Every value of every Secret at least SHORTEST characters long, and its trimmed form
    (files end in newlines), longest first (so a value containing another goes whole). A
    Secret that cannot be read (missing, no data) has nothing to mask."""
    found: set[str] = set()
    for name in list(secrets):
        try:
            values = secrets[name]
            items = [values[key] for key in list(values)]
        except KeyError:
            continue
        found.update(v for value in items for v in (value, value.strip()) if len(v) >= SHORTEST)
    return sorted(found, key=len, reverse=True)


def mask(text: str, values: Sequence[str]) -> str:
    """`text` with every value replaced by MASK, and a trailing fragment of one masked.
    The fragment is taken off first: replacing a short value inside it would hide the
    longer value it begins."""
    head, fragment = _split_tail(text, values)
    for value in values:
        if value in head:
            head = head.replace(value, MASK)
    head, straddled = _split_tail(head, values)  # a value that ran into the fragment
    return head + MASK if fragment or straddled else head


def cut(text: str, limit: int, values: Sequence[str]) -> str:
    """`text` masked, then cut to at most `limit` characters: the cut never leaves the
    beginning of a value at the end."""
    masked = mask(text, values)
    if len(masked) <= limit:
        return masked
    head, fragment = _split_tail(masked[:limit], values)
    return head + MASK if fragment else head


def mask_json(value: Any, values: Sequence[str]) -> Any:
    """A JSON value with `mask` applied to every string, keys included."""
    if not values:
        return value
    if isinstance(value, str):
        return mask(value, values)
    if isinstance(value, list):
        return [mask_json(v, values) for v in value]
    if isinstance(value, dict):
        return {mask(str(k), values): mask_json(v, values) for k, v in value.items()}
    return value


def _split_tail(text: str, values: Sequence[str]) -> tuple[str, bool]:
    """`text` without the trailing fragments of values (SHORTEST characters or more,
    shorter than the value: a whole one is the replacement's), and whether it had one."""
    found = False
    while longest := _tail_fragment(text, values):
        text, found = text[:-longest], True
    return text, found


def _tail_fragment(text: str, values: Sequence[str]) -> int:
    """The length of the longest end of `text` that begins a value, or 0."""
    longest = 0
    for value in values:
        tail = text[-(len(value) - 1) :] if len(value) > 1 else ""
        start = tail.find(value[:SHORTEST])
        while start != -1 and len(tail) - start > longest:
            if value.startswith(tail[start:]):
                longest = len(tail) - start
                break
            start = tail.find(value[:SHORTEST], start + 1)
    return longest
