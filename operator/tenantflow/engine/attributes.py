"""Search attributes as label values, and those workflow code sets while it runs (issue 34.3).

An instance's search attributes are labels (lifecycle/attributes.py reads them from its
params at its start). `step.set_attributes(status="tests-passed")` sets them from the code
too, as Temporal's upsert of search attributes does; only the names the definition
declares in spec.searchAttributes, so tenant code never writes a label of the platform's
(`tenantflow.dev/shard`). Nothing is journaled: each advance replays run() from the
start, so the attributes set by the time it stops (the last call for a name wins) are the
same on every replay, and the advance's result carries them for the operator to apply.

A label value has a grammar (63 characters of [A-Za-z0-9._-], alphanumeric at both ends):
a value outside it is made to fit (other characters become `-`, then trimmed), the one
rule for values read from params and values set from code.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from tenantflow.engine.errors import EngineError
from tenantflow.vocabulary import ATTRIBUTE_KEY

MAX_LABEL_VALUE = 63
_OUTSIDE = re.compile(r"[^A-Za-z0-9._-]+")
_KEY = re.compile(ATTRIBUTE_KEY)
Attributes = dict[str, str | None]  # name -> label value; None: the label is removed


class SearchAttributeError(EngineError):
    """`step.set_attributes` with a name the definition does not declare, or a value that
    cannot be a label value (a list, an object): the code is wrong, not a step."""

    reason = "InvalidSearchAttribute"


def fit(value: Any) -> str | None:
    """`value` as a label value (a bool as true/false, a number as its text), made to fit;
    None when it gives none: not a string, number or boolean, or nothing left of it."""
    if isinstance(value, bool):
        value = str(value).lower()
    if not isinstance(value, (str, int, float)):
        return None
    return _OUTSIDE.sub("-", str(value))[:MAX_LABEL_VALUE].strip("-._") or None


def to_set(name: Any, value: Any, declared: Collection[str] | None) -> str | None:
    """What `step.set_attributes(name=value)` sets: the fitted value, or None (removed:
    None, or a value that fits to nothing). `declared`: the definition's attribute names
    (None: any name of the label grammar, for tests without a definition). Raises
    SearchAttributeError naming the attribute and the fix."""
    if not isinstance(name, str) or not _KEY.fullmatch(name):
        raise SearchAttributeError(
            f"step.set_attributes: {name!r} is not a search attribute name (a label name "
            "without a prefix: letters, digits, -_. ; at most 63)"
        )
    if declared is not None and name not in declared:
        known = ", ".join(sorted(declared)) or "none"
        raise SearchAttributeError(
            f"step.set_attributes: {name!r} is not a search attribute of this definition "
            f"(declared: {known}); declare it in the WorkflowDefinition's "
            f"spec.searchAttributes ({name}: <a params field>) to set it from the code"
        )
    if value is not None and not isinstance(value, (str, int, float)):
        raise SearchAttributeError(
            f"step.set_attributes: {name!r}: a value must be a str, int, float, bool or None "
            f"(None removes it), got {type(value).__name__}"
        )
    return fit(value)
