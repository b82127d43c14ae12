"""Child workflows: the name a child instance gets, what a parent asks to start, and what
a finished child hands back, in the shapes both sides of the sandbox boundary share.

A child's name is derived, never chosen: the parent's name, a readable slug of the step,
and a hash of (step, epoch). The same step of the same run always names the same child,
so starting it twice (a crash between the start and the parent's status write, a replay)
finds the one already there; a reset of the parent is a new epoch, so its child steps
start new children instead of recalling the old results.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from tenantflow import jsonsafe
from tenantflow.vocabulary import DNS_SUBDOMAIN, FINISHED

MAX_NAME = 253  # a Kubernetes object name (DNS subdomain)
MAX_PARAMS_BYTES = 256 * 1024  # a child's params, as JSON (it becomes its spec.params)
MAX_STARTS = 1000  # children one advance may ask to start (also bounded by its steps)
DEFINITION = re.compile(DNS_SUBDOMAIN)


def child_name(parent: str, step: str, epoch: int = 0) -> str:
    """The child instance a parent's `step.child(step, ...)` runs as."""
    digest = hashlib.sha256(f"{step}#{epoch}".encode()).hexdigest()[:10]
    slug = re.sub(r"[^a-z0-9]+", "-", step.lower()).strip("-")[:40].strip("-")
    stem = parent[: MAX_NAME - len(slug) - len(digest) - 2].rstrip("-.")
    return "-".join(p for p in (stem, slug, digest) if p)


@dataclass(frozen=True, slots=True)
class ChildStart:
    """A child the parent waits on: the operator creates it unless it exists."""

    step: str
    name: str
    definition: str
    revision: int | None = None
    params: Any = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "name": self.name,
            "definition": self.definition,
            "revision": self.revision,
            "params": self.params,
        }

    @classmethod
    def from_wire(cls, data: Any) -> ChildStart:
        """Decoded and checked: the request crossed the sandbox boundary (tenant code
        could have written it), so every field is bounded here."""
        if not isinstance(data, dict):
            raise ValueError("a child start must be an object")
        step, name, definition = data.get("step"), data.get("name"), data.get("definition")
        revision = data.get("revision")
        if not isinstance(step, str) or not 0 < len(step) <= 256:
            raise ValueError("a child start's step must be a name of 1-256 characters")
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            raise ValueError(f"child {step!r}: its name must have 1-{MAX_NAME} characters")
        params = data.get("params")
        check(step, definition, params, revision)
        return cls(step, name, str(definition), revision, params)


def check(step: str, definition: Any, params: Any, revision: Any) -> None:
    """What a start asks for, bounded (ValueError naming the step and the field): the
    engine checks `step.child`'s arguments with it, the runner and the operator the
    starts an answer brings back."""
    if (
        not isinstance(definition, str)
        or len(definition) > MAX_NAME
        or not DEFINITION.match(definition)
    ):
        raise ValueError(
            f"child {step!r}: definition must be the name of a WorkflowDefinition in the "
            f"same namespace (lowercase letters, digits, '-' and '.'), got {definition!r}"
        )
    if revision is not None and (
        not isinstance(revision, int) or isinstance(revision, bool) or revision < 1
    ):
        raise ValueError(f"child {step!r}: revision must be an integer >= 1, or None")
    try:
        size = len(jsonsafe.dumps(params))
    except jsonsafe.UnsafeJSON as exc:
        raise ValueError(f"child {step!r}: params must be plain JSON ({exc})") from None
    if size > MAX_PARAMS_BYTES:
        raise ValueError(
            f"child {step!r}: params are {size} bytes of JSON, over {MAX_PARAMS_BYTES}; pass "
            "a key to data in env.db instead"
        )


@dataclass(frozen=True, slots=True)
class ChildResult:
    """A finished child, as its parent's next advance receives it."""

    phase: str  # Complete, Errored or Terminated
    output: Any = None
    output_ref: str | None = None
    error: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "output": self.output,
            "outputRef": self.output_ref,
            "error": self.error,
        }

    @classmethod
    def from_wire(cls, data: Any) -> ChildResult:
        if not isinstance(data, dict) or data.get("phase") not in FINISHED:
            raise ValueError("a child result must be an object with a finished phase")
        ref, error = data.get("outputRef"), data.get("error")
        return cls(
            phase=str(data["phase"]),
            output=data.get("output"),
            output_ref=ref if isinstance(ref, str) else None,
            error=error if isinstance(error, dict) else None,
        )

    @classmethod
    def of_status(cls, status: dict[str, Any]) -> ChildResult | None:
        """From a child instance's status; None while it has not finished."""
        if status.get("phase") not in FINISHED:
            return None
        return cls.from_wire(status)
