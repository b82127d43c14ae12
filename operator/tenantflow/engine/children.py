"""Child workflows: the name a child instance gets, what a parent asks to start, and what
a finished child hands back, in the shapes both sides of the sandbox boundary share.

A child's name is derived, never chosen: the parent's name, a readable slug of the step,
and a hash of (step, epoch). The same step of the same run always names the same child,
so starting it twice (a crash between the start and the parent's status write, a replay)
finds the one already there; a reset of the parent is a new epoch, so its child steps
start new children instead of recalling the old results.

A start may carry a source (`step.child(..., source=)`: a plan written at runtime). The
operator records it as a revision of the named definition and starts the child pinned to
it; the revision is then journaled on the step (`revision`), and every later start of
that step carries the revision instead of the source, so a replay never writes again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tenantflow import jsonsafe
from tenantflow.vocabulary import (
    DEFAULT_MAIN,
    DNS_SUBDOMAIN,
    FINISHED,
    MAX_CODE_BYTES,
    MAX_FILES,
)

MAX_NAME = 253  # a Kubernetes object name (DNS subdomain)
MAX_PARAMS_BYTES = 256 * 1024  # a child's params, as JSON (it becomes its spec.params)
MAX_STARTS = 1000  # children one advance may ask to start (also bounded by its steps)
DEFINITION = re.compile(DNS_SUBDOMAIN)
MAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")  # spec.source.main's pattern
MAX_FILE_NAME = 128  # characters of one file name of a source (the CRD's rule is stricter)
# the sources one advance's starts may carry together (each at most MAX_CODE_BYTES): the
# answer must stay well under the runner's frame cap; starts beyond it wait for the next
# advance, which the operator asks for at once (engine/executor.py, _waiting)
MAX_SOURCES_PER_ADVANCE = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ChildSource:
    """A plan written at runtime: the files a definition's new revision holds (name ->
    text, `helpers.py` or `helpers.ts`) and the module that defines the entrypoint."""

    files: Mapping[str, str] = field(default_factory=dict)
    main: str = DEFAULT_MAIN

    @property
    def size(self) -> int:
        """Its bytes, as the definition's size cap counts them (the files' text)."""
        return sum(len(text.encode()) for text in self.files.values())

    def too_large(self) -> str | None:
        """Why it is over the caps every source has, or None."""
        if len(self.files) > MAX_FILES or self.size > MAX_CODE_BYTES:
            return (
                f"{len(self.files)} file(s), {self.size} bytes: a source holds at most "
                f"{MAX_FILES} files and {MAX_CODE_BYTES} bytes together; move data out of the "
                "code (into the child's params, or env.db)"
            )
        return None

    def to_wire(self) -> dict[str, Any]:
        return {"files": dict(self.files), "main": self.main}

    @classmethod
    def of(cls, step: str, value: Any) -> ChildSource:
        """What `step.child(..., source=)` was given, in shape (ValueError naming the step
        and what is wrong); its size is not checked here (`too_large`)."""
        if not isinstance(value, Mapping):
            raise ValueError(
                f"child {step!r}: source must be a dict like {{'files': {{'plan.py': text}}, "
                f"'main': 'plan'}}, got {type(value).__name__}"
            )
        unknown = sorted(str(k) for k in value if k not in ("files", "main"))
        if unknown:
            raise ValueError(f"child {step!r}: source takes files and main, not {unknown}")
        files, main = value.get("files"), value.get("main", DEFAULT_MAIN)
        if (
            not isinstance(files, Mapping)
            or not files
            or not all(
                isinstance(k, str) and 0 < len(k) <= MAX_FILE_NAME and isinstance(v, str)
                for k, v in files.items()
            )
        ):
            raise ValueError(
                f"child {step!r}: source files must be a non-empty dict of file name "
                f"(at most {MAX_FILE_NAME} characters) -> text, like {{'plan.py': text}}"
            )
        if not isinstance(main, str) or not MAIN.match(main):
            raise ValueError(
                f"child {step!r}: source main must name the module that defines the "
                f"entrypoint (a file name without its extension, like 'plan'), got {main!r}"
            )
        return cls(dict(files), main)


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
    # a plan written at runtime: recorded as a revision of `definition` first, the child
    # pinned to it (until the journal has that revision: then `revision` says it)
    source: ChildSource | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "name": self.name,
            "definition": self.definition,
            "revision": self.revision,
            "params": self.params,
            **({"source": self.source.to_wire()} if self.source is not None else {}),
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
        params, source = data.get("params"), data.get("source")
        check(step, definition, params, revision, source)
        if source is not None:
            written = ChildSource.of(step, source)
            if (problem := written.too_large()) is not None:
                raise ValueError(f"child {step!r}: source {problem}")
            return cls(step, name, str(definition), revision, params, written)
        return cls(step, name, str(definition), revision, params)


def check(step: str, definition: Any, params: Any, revision: Any, source: Any = None) -> None:
    """What a start asks for, bounded (ValueError naming the step and the field): the
    engine checks `step.child`'s arguments with it, the runner and the operator the
    starts an answer brings back. A source's shape is checked too (`ChildSource.of`), its
    size by the caller (the engine fails the step, the boundary refuses the answer)."""
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
    if source is not None:
        if revision is not None:
            raise ValueError(
                f"child {step!r}: give a source or a revision, not both (a source is "
                "recorded as the definition's revision the child is pinned to)"
            )
        ChildSource.of(step, source)
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
