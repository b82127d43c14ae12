"""Search attributes (issue 34.3): a definition names, for each attribute, the field of an
instance's params it is read from; the instance carries them as labels from its start
(`kubectl get wfi -l repo=acme-web`), and its archive record indexes the same labels, so
one filter finds it live or archived (Temporal's visibility is the anchor). Workflow code
sets declared ones while it runs (`step.set_attributes`, engine/attributes.py): each
advance's result carries them, and the operator applies them as labels.

A value outside the label-value grammar is made to fit (engine/attributes.py `fit`), never
refused, so an instance always starts; a field that is absent, or not a string, number
or boolean, gives no label.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from tenantflow.engine.attributes import MAX_LABEL_VALUE, Attributes, fit

# entries of an advance's `attributes` looked at, at most: more is not a well-formed result
# (a definition declares at most MAX_ATTRIBUTES), and the whole field is ignored
MAX_SET_ATTRIBUTES = 32


def labels_for(params: Any, declared: dict[str, str]) -> dict[str, str]:
    """The labels an instance with `params` gets: attribute -> its params field's value."""
    out: dict[str, str] = {}
    for key, path in declared.items():
        text = fit(_at(params, path))
        if text is not None:
            out[key] = text
    return out


def from_result(
    raw: Any, declared: Collection[str], mask: Callable[[str], str] = lambda text: text
) -> tuple[Attributes, list[str]]:
    """The attributes of an advance's result that may become labels, and what was ignored.

    They cross the sandbox (tenant code could write them), so the runner and the operator
    both keep only: an object of at most MAX_SET_ATTRIBUTES entries, each a declared name
    -> a string of at most MAX_LABEL_VALUE characters (`mask`ed, then made to fit) or
    null. Anything else is ignored and said, never an error."""
    if raw is None:
        return {}, []
    if not isinstance(raw, dict) or len(raw) > MAX_SET_ATTRIBUTES:
        return {}, [f"not an object of at most {MAX_SET_ATTRIBUTES} attributes"]
    kept: Attributes = {}
    ignored: list[str] = []
    for name, value in raw.items():
        if not isinstance(name, str) or name not in declared:
            ignored.append(f"{str(name)[:80]!r}: not a declared search attribute")
        elif value is None:
            kept[name] = None
        elif not isinstance(value, str) or len(value) > MAX_LABEL_VALUE:
            ignored.append(f"{name!r}: not a string of at most {MAX_LABEL_VALUE} characters")
        elif (text := fit(mask(value))) is None:
            ignored.append(f"{name!r}: no label value is left of it")
        else:
            kept[name] = text
    return kept, ignored


def label_patch(have: Mapping[str, str], attributes: Attributes) -> dict[str, str | None]:
    """The metadata.labels merge patch that makes `have` carry `attributes` (None removes
    a label): only what differs, so an unchanged instance is not written."""
    return {
        name: value
        for name, value in attributes.items()
        if (have.get(name) != value if value is not None else name in have)
    }


def _at(params: Any, path: str) -> Any:
    value = params
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
