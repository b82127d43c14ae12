"""WorkflowInstance: one durable run of a definition, its journal in the status."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tenantflow.api.common import (
    MAX_PARAM_PROPERTIES,
    Model,
    ObservedStatus,
    Resource,
    any_json,
    cel,
    rule,
)
from tenantflow.engine.journal import StepKind, StepState
from tenantflow.engine.state import MAX_TRACEBACK
from tenantflow.vocabulary import DNS_SUBDOMAIN, Phase

MAX_EVENTS = 1000
EVENT_TYPE = r"^[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?$"


class WorkflowRef(Model):
    name: str = Field(
        pattern=DNS_SUBDOMAIN,
        max_length=253,
        description="WorkflowDefinition in the same namespace.",
    )
    revision: int | None = Field(
        None, ge=1, description="Revision to run; unset = the definition's activeRevision."
    )


class InboxEvent(Model):
    type: str = Field(
        pattern=EVENT_TYPE,
        max_length=128,
        description="Event type that step.wait_for_event matches.",
    )
    payload: Any = any_json("Event payload (JSON).", maxProperties=MAX_PARAM_PROPERTIES)


class WorkflowInstanceSpec(Model):
    workflow_ref: WorkflowRef = Field(
        description="The definition (and optionally revision) to run; immutable.",
        json_schema_extra=cel(
            rule(
                "self == oldSelf",
                "spec.workflowRef is immutable; create a new WorkflowInstance to run another "
                "workflow or revision",
            )
        ),
    )
    params: Any = any_json(
        "Passed to run() as event['payload'].", maxProperties=MAX_PARAM_PROPERTIES
    )
    suspend: bool = Field(False, description="true pauses after the running step; false resumes.")
    terminate: bool = Field(
        False,
        description="true ends the instance as Terminated (with the annotation "
        "tenantflow.dev/terminate: rollback, after the rollbacks of its completed steps).",
    )
    events: list[InboxEvent] = Field(
        default_factory=list,
        max_length=MAX_EVENTS,
        description="Append-only inbox of events; `tenantflow send-event` appends.",
        json_schema_extra={
            "x-kubernetes-list-type": "atomic",
            **cel(
                rule(
                    "size(self) >= size(oldSelf) && oldSelf.all(e, e in self) && "
                    "self.slice(0, size(oldSelf)) == oldSelf",
                    "spec.events is append-only: existing events may not be changed or removed; "
                    "append new ones at the end",
                )
            ),
        },
    )


class WaitingFor(Model):
    kind: Literal["sleep", "event", "retry", "child"] = Field(
        description="sleep, event, retry or child."
    )
    step: str | None = Field(None, description="The step that waits.")
    until: str | None = Field(None, description="Wake-up or timeout time (RFC 3339).")
    event_type: str | None = Field(None, description="Event type awaited.")
    child: str | None = Field(None, description="The child instance awaited (step.child).")


class ErrorInfo(Model):
    name: str = Field(description="Error class or reason, e.g. ValueError, NonDeterminism.")
    message: str = Field("", description="Error message.")
    step: str | None = Field(None, description="Step that failed, if any.")
    traceback: str | None = Field(
        None,
        max_length=MAX_TRACEBACK,
        description="The traceback of the tenant's own code (no engine frames), secrets "
        "masked; its end when longer.",
    )


class LostAttempt(Model):
    """Step attempts whose process was killed before they could answer."""

    attempts: int = Field(ge=1, description="The step's attempts, the lost ones included.")
    error: ErrorInfo = Field(description="Why the last of them was lost, e.g. OutOfMemory.")


class AttemptFailure(Model):
    """One failed attempt of a step, kept after the step goes on (the last three)."""

    attempt: int = Field(ge=1, description="Which attempt (1-based).")
    name: str = Field(description="Error class or reason, e.g. ValueError, StepTimeout.")
    message: str = Field("", description="Its message (the first 512 characters).")
    at: str = Field(description="When it failed (RFC 3339).")


class StepStatus(Model):
    """One journal entry (the engine's StepRecord.to_dict shape)."""

    name: str = Field(description="Step name, unique in the instance.")
    kind: StepKind = Field(
        description="do, sleep, event or child (what run() called); compensate (the "
        "compensation's marker: its trigger in error) or rollback (rollback:<step>)."
    )
    state: StepState = Field(description="Running, Retrying, Waiting, Complete or Errored.")
    attempts: int = Field(0, description="Attempts made (step.do).")
    started_at: str | None = Field(None, description="First attempt or wait start.")
    finished_at: str | None = Field(None, description="When it completed or failed.")
    output: Any = any_json(
        "The step's result (JSON), when small enough to keep inline.", nullable=True
    )
    output_ref: str | None = Field(None, description="Where a large output is stored.")
    error: ErrorInfo | None = Field(None, description="Last error.")
    until: str | None = Field(None, description="sleep: wake time; event: timeout.")
    next_attempt_at: str | None = Field(None, description="When the next retry starts.")
    event_type: str | None = Field(None, description="Event type awaited.")
    event_index: int | None = Field(None, description="spec.events index consumed.")
    child: str | None = Field(None, description="The child instance this step runs (child).")
    revision: int | None = Field(
        None,
        ge=1,
        description="A child step given a source (a plan written at runtime): the revision "
        "of its definition that source was recorded as, and the child pinned to.",
    )
    failures: list[AttemptFailure] | None = Field(
        None, max_length=3, description="Its last failed attempts, kept after it succeeds."
    )
    rollback: int | None = Field(
        None,
        ge=1,
        description="A completed step.do with a rollback: its place among such completions "
        "(compensation undoes them newest first).",
    )


class ResetRecord(Model):
    """One `tenantflow reset` / `retry`, applied or refused."""

    id: str = Field(description="The request's id (each is applied once).")
    to_step: str | None = Field(None, description="The step the journal was cut before.")
    from_revision: int | None = Field(None, description="Revision before the reset.")
    to_revision: int | None = Field(None, description="Revision after it.")
    reason: str = Field("", description="Why, as given to the CLI.")
    by: str = Field("", description="Who asked (their Kubernetes user).")
    at: str = Field(description="When it was applied (RFC 3339).")
    steps_cut: int = Field(0, ge=0, description="Journal entries removed (they run again).")
    refused: str | None = Field(None, description="Why it was not applied, if it was not.")
    epoch: int | None = Field(
        None, ge=1, description="The instance's resets applied, this one included."
    )


class OffloadedSteps(Model):
    count: int = Field(ge=0, description="Entries kept in the tenant's history store.")
    digest: str = Field(max_length=64, description="sha256 chain over them, in order.")


class WorkflowInstanceStatus(ObservedStatus):
    phase: Phase | None = Field(
        None,
        description="Queued, Running, Waiting, Paused, Compensating (running rollbacks), "
        "Complete, Errored, Terminated or RollbackFailed.",
    )
    revision: int | None = Field(None, description="Definition revision this instance runs.")
    started_at: str | None = Field(None, description="When it started running.")
    journal_version: int | None = Field(
        None,
        ge=1,
        description="The format of its journal (status.steps), written at its start; an "
        "operator that reads only older formats leaves the instance alone.",
    )
    finished_at: str | None = Field(None, description="When it finished.")
    waiting_for: WaitingFor | None = Field(None, description="What a Waiting instance awaits.")
    next_wake_at: str | None = Field(
        None, description="Earliest time a Waiting instance must be advanced again."
    )
    output: Any = any_json("Return value of run() (JSON).", nullable=True)
    output_ref: str | None = Field(None, description="Where a large output is stored.")
    error: ErrorInfo | None = Field(
        None, description="Why it Errored (or, RollbackFailed, which rollback failed and why)."
    )
    steps: list[StepStatus] = Field(default_factory=list, description="The durable journal.")
    step_count: int | None = Field(
        None, description="Journal entries (the steps here and the offloaded ones)."
    )
    offloaded_steps: OffloadedSteps | None = Field(
        None,
        description="The oldest finished journal entries, kept in the tenant's history "
        "store instead of here (the status keeps the newest ones): their count and the "
        "digest the sandbox checks them against before a replay.",
    )
    lost_attempts: dict[str, LostAttempt] = Field(
        default_factory=dict,
        description="Step attempts killed with their process (the sandbox's memory limit, "
        "the advance's deadline), by step name: each counts as a failed attempt of that "
        "step, retried by its own policy; cleared once the journal holds it.",
    )
    events_seen: list[str] = Field(
        default_factory=list,
        description="Arrival time (RFC 3339) of each spec.events entry, by index.",
    )
    queries: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="The queries its code registered (step.query) as of its last advance: "
        "`tenantflow query NAME QUERY` reads one.",
    )
    resets: list[ResetRecord] = Field(
        default_factory=list,
        max_length=20,
        description="Resets and retries (`tenantflow reset|retry`), newest last.",
    )


class WorkflowInstance(Resource):
    """One durable run of a WorkflowDefinition."""

    kind: str = "WorkflowInstance"
    spec: WorkflowInstanceSpec = Field(description="Desired state.")
    status: WorkflowInstanceStatus | None = Field(
        None,
        description="Observed state.",
        # one field to server-side field tracking: its one writer (the operator, one merge
        # patch per drive) owns it whole, so managedFields holds `f:status` instead of
        # every key of it (~700 B less per object in etcd and the watch cache, and no
        # per-field diff on each of its writes)
        json_schema_extra={"x-kubernetes-map-type": "atomic"},
    )
