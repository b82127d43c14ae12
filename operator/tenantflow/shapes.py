"""The wire shapes of what the operator reads and writes on every drive, as TypedDicts.

The pydantic models in `api/` are the source of truth (they generate the CRDs); the hot
path does not validate through them (view.py says why: ~40x the cost). These TypedDicts
give that path the same field names at zero run-time cost: a status is still the dict the
API server sent, and mypy refuses a misspelt key. tests/unit/test_one_shape.py pins each
one to its model, field for field, so neither can drift from the other.

Every key is optional (total=False): an object's status grows field by field, and a
writer leaves out what is None. No imports beyond typing: any layer may use it.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class ErrorEntry(TypedDict, total=False):
    """`status.error`, `status.steps[].error` (api.instance.ErrorInfo)."""

    name: str
    message: str
    step: str | None
    traceback: str | None


class AttemptFailureEntry(TypedDict, total=False):
    """`status.steps[].failures[]` (api.instance.AttemptFailure)."""

    attempt: int
    name: str
    message: str
    at: str


class StepEntry(TypedDict, total=False):
    """`status.steps[]`: one journal record (api.instance.StepStatus; engine StepRecord)."""

    name: str
    kind: str
    state: str
    attempts: int
    startedAt: str | None
    finishedAt: str | None
    output: Any
    outputRef: str | None
    error: ErrorEntry | None
    until: str | None
    nextAttemptAt: str | None
    eventType: str | None
    eventIndex: int | None
    child: str | None
    revision: int | None
    failures: list[AttemptFailureEntry] | None
    rollback: int | None


class ConditionEntry(TypedDict, total=False):
    """`status.conditions[]` of every kind (api.common.Condition)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    lastTransitionTime: str | None
    observedGeneration: int | None


class WaitingForEntry(TypedDict, total=False):
    """`status.waitingFor` (api.instance.WaitingFor)."""

    kind: Literal["sleep", "event", "retry", "child"]
    step: str | None
    until: str | None
    eventType: str | None
    child: str | None


class InstanceStatus(TypedDict, total=False):
    """A WorkflowInstance's `status` (api.instance.WorkflowInstanceStatus). The records
    the engine and the lifecycle keep for themselves (lost attempts, resets, offloaded
    steps) stay plain dicts here: their own modules read them."""

    conditions: list[ConditionEntry]
    observedGeneration: int | None
    phase: str | None
    revision: int | None
    startedAt: str | None
    journalVersion: int | None
    finishedAt: str | None
    waitingFor: WaitingForEntry | None
    nextWakeAt: str | None
    output: Any
    outputRef: str | None
    error: ErrorEntry | None
    steps: list[StepEntry]
    stepCount: int | None
    offloadedSteps: dict[str, Any] | None
    lostAttempts: dict[str, dict[str, Any]]
    eventsSeen: list[str]
    queries: list[str]
    resets: list[dict[str, Any]]
