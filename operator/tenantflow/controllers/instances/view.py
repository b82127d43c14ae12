"""A watched WorkflowInstance decoded once, at the edge, into what the controller reads.

A lean dataclass rather than the pydantic model: the API server has validated the object
against the CRD schema already, and this runs for every event and drive (tens of thousands
a minute at 300 instances/s), where a pydantic validation of the journal costs ~40x more
(measured in bench/README.md). The status stays a dict: it goes back to the API server
and to the sandbox as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from tenantflow.lifecycle.instance_state import lends_slot
from tenantflow.lifecycle.reset import ResetRequest, applied
from tenantflow.observability.logging import get_logger
from tenantflow.owners import controller_name
from tenantflow.shapes import InstanceStatus
from tenantflow.vocabulary import (
    ARCHIVE_NOW_ANNOTATION,
    INSTANCE,
    SCHEDULE_LABEL,
    TERMINATE_ANNOTATION,
    TERMINATE_ROLLBACK,
    ObjectKey,
    object_key,
    tenant_owning,
)

log = get_logger("tenantflow.instance")


@dataclass(frozen=True, slots=True)
class InstanceView:
    key: ObjectKey  # the work queue's key
    namespace: str
    name: str
    tenant: str | None  # None outside a tenant namespace (never driven)
    generation: int | None
    created: str
    workflow: str
    pinned_revision: int | None  # spec.workflowRef.revision
    params: Any
    events: list[dict[str, Any]]
    suspend: bool
    terminate: bool
    status: InstanceStatus
    reset: ResetRequest | None  # `tenantflow reset|retry`'s request (annotation), if any
    uid: str = ""
    parent: str | None = None  # the parent instance of a child (its controller owner)
    schedule: str | None = None  # the WorkflowSchedule that started it (its label)
    archive_now: bool = False  # once finished, archived and deleted at once (its schedule's)
    # spec.terminate runs the rollbacks of its completed steps first (the annotation)
    terminate_rollback: bool = False

    @classmethod
    def decode(cls, body: dict[str, Any]) -> InstanceView:
        meta, spec = body["metadata"], body.get("spec") or {}
        ns = meta["namespace"]
        ref = spec.get("workflowRef") or {}
        return cls(
            key=key_of(body),
            namespace=ns,
            name=meta["name"],
            tenant=tenant_owning(ns),
            generation=meta.get("generation"),
            created=meta.get("creationTimestamp", ""),
            workflow=ref.get("name", ""),
            pinned_revision=ref.get("revision"),
            params=spec.get("params"),
            events=spec.get("events") or [],
            suspend=bool(spec.get("suspend")),
            terminate=bool(spec.get("terminate")),
            status=cast(InstanceStatus, body.get("status") or {}),  # (the CRD's schema)
            reset=_reset_request(meta.get("annotations")),
            uid=meta.get("uid", ""),
            parent=controller_name(body, INSTANCE),
            schedule=(meta.get("labels") or {}).get(SCHEDULE_LABEL),
            archive_now=ARCHIVE_NOW_ANNOTATION in (meta.get("annotations") or {}),
            terminate_rollback=(meta.get("annotations") or {}).get(TERMINATE_ANNOTATION)
            == TERMINATE_ROLLBACK,
        )

    @property
    def reset_pending(self) -> bool:
        return self.reset is not None and not applied(self.status, self.reset)

    @property
    def phase(self) -> str | None:
        phase: str | None = self.status.get("phase")
        return phase

    @property
    def lent(self) -> bool:
        """Its concurrency slot is lent to the children it awaits."""
        return lends_slot(self.status)


def _reset_request(annotations: dict[str, str] | None) -> ResetRequest | None:
    try:
        return ResetRequest.parse(annotations)
    except ValueError as exc:  # hand-written: the CLI writes valid ones
        log.warning("reset annotation ignored", error=str(exc))
        return None


def key_of(body: dict[str, Any]) -> ObjectKey:
    return object_key(body["metadata"]["namespace"], body["metadata"]["name"])
