"""Values that survive every hop unchanged: JSON the API server stores exactly as sent.

Python's json accepts things etcd and the API server would rewrite or refuse: lone UTF-16
surrogates (replaced), integers beyond 2^53 (rounded by JSON clients), NaN and Infinity
(refused), and nesting deep enough to crash a recursive decoder. A value that passes
`check` reads back identically on every replay; every boundary (step output, run output,
env.log fields, the worker's answer to the runner) applies it.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64
MAX_SAFE_INTEGER = 2**53 - 1


class UnsafeJSON(ValueError):
    """The value would not survive the trip to the API server unchanged; says where and why."""


def check(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise UnsafeJSON unless `value` is plain JSON that round-trips exactly (iterative)."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "$")]
    while stack:
        item, depth, path = stack.pop()
        if depth > max_depth:
            raise UnsafeJSON(f"{path}: nested deeper than {max_depth} levels")
        if isinstance(item, list | tuple):
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(item))
        elif isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise UnsafeJSON(f"{path}: key {k!r} is a {type(k).__name__}, not a string")
                _check_str(k, f"{path} key")
                stack.append((v, depth + 1, f"{path}.{k}"))
        else:
            _check_scalar(item, path)


def _check_scalar(item: Any, path: str) -> None:
    if item is None or isinstance(item, bool):
        return
    if isinstance(item, str):
        _check_str(item, path)
    elif isinstance(item, int):
        if abs(item) > MAX_SAFE_INTEGER:
            raise UnsafeJSON(
                f"{path}: integer {item} is beyond ±2^53 and would be rounded; pass it as a string"
            )
    elif isinstance(item, float):
        if not math.isfinite(item):
            raise UnsafeJSON(f"{path}: {item} is not a JSON number")
    else:
        raise UnsafeJSON(f"{path}: a {type(item).__name__} is not JSON")


def _check_str(s: str, path: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeJSON(f"{path}: the string holds a lone surrogate (not valid UTF-8)") from None


def dumps(value: Any) -> bytes:
    """Compact JSON of a checked value (raises UnsafeJSON first)."""
    check(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def loads(data: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse untrusted bytes and check the result (deep nesting and NaN are UnsafeJSON)."""
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise UnsafeJSON("$: nested too deeply to parse") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnsafeJSON(f"not JSON: {exc}") from None
    check(value, max_depth=max_depth)
    return value


def _no_constant(name: str) -> Any:
    raise UnsafeJSON(f"{name} is not a JSON number")
