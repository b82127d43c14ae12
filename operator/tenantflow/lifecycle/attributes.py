"""Search attributes (issue 34.3): a definition names, for each attribute, the field of an
instance's params it is read from; the instance carries them as labels from its start
(`kubectl get wfi -l repo=acme-web`), and its archive record indexes the same labels, so
one filter finds it live or archived (Temporal's visibility is the anchor).

A label value has a grammar (63 characters of [A-Za-z0-9._-], alphanumeric at both ends):
a value outside it is made to fit (other characters become `-`, then trimmed), never
refused, so an instance always starts; a field that is absent, or not a string, number
or boolean, gives no label.
"""

from __future__ import annotations

import re
from typing import Any

MAX_LABEL_VALUE = 63
_OUTSIDE = re.compile(r"[^A-Za-z0-9._-]+")


def labels_for(params: Any, declared: dict[str, str]) -> dict[str, str]:
    """The labels an instance with `params` gets: attribute -> its params field's value."""
    out: dict[str, str] = {}
    for key, path in declared.items():
        value = _at(params, path)
        if isinstance(value, bool):
            value = str(value).lower()
        if not isinstance(value, (str, int, float)):
            continue
        text = _OUTSIDE.sub("-", str(value))[:MAX_LABEL_VALUE].strip("-._")
        if text:
            out[key] = text
    return out


def _at(params: Any, path: str) -> Any:
    value = params
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
