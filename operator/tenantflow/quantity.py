"""Kubernetes resource quantities ("512Mi", "1G", "100m") as numbers."""

from __future__ import annotations

import re
from decimal import Decimal

_SUFFIX: dict[str, Decimal | int] = {
    "": 1,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)$")


def parse_quantity(value: str | int) -> Decimal:
    match = _RE.match(str(value).strip())
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"{value!r} is not a Kubernetes quantity like 512Mi or 1Gi")
    return Decimal(match.group(1)) * _SUFFIX[match.group(2)]
