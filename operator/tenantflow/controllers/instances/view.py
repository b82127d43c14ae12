"""A watched WorkflowInstance decoded once, at the edge, into what the controller reads.

A lean dataclass rather than the pydantic model: the API server has validated the object
against the CRD schema already, and this runs for every event and drive (tens of thousands
a minute at 300 instances/s), where a pydantic validation of the journal costs ~40x more
(measured in bench/README.md). The status stays a dict: it goes back to the API server
and to the sandbox as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tenantflow.vocabulary import NAMESPACE_PREFIX


@dataclass(frozen=True, slots=True)
class InstanceView:
    key: str  # namespace/name: the work queue's key
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
    status: dict[str, Any]

    @classmethod
    def decode(cls, body: dict[str, Any]) -> InstanceView:
        meta, spec = body["metadata"], body.get("spec") or {}
        ns = meta["namespace"]
        ref = spec.get("workflowRef") or {}
        return cls(
            key=key_of(body),
            namespace=ns,
            name=meta["name"],
            tenant=ns.removeprefix(NAMESPACE_PREFIX) if ns.startswith(NAMESPACE_PREFIX) else None,
            generation=meta.get("generation"),
            created=meta.get("creationTimestamp", ""),
            workflow=ref.get("name", ""),
            pinned_revision=ref.get("revision"),
            params=spec.get("params"),
            events=spec.get("events") or [],
            suspend=bool(spec.get("suspend")),
            terminate=bool(spec.get("terminate")),
            status=body.get("status") or {},
        )

    @property
    def phase(self) -> str | None:
        phase: str | None = self.status.get("phase")
        return phase


def key_of(body: dict[str, Any]) -> str:
    return f"{body['metadata']['namespace']}/{body['metadata']['name']}"


def tenant_of(namespace: str) -> str:
    """The tenant a namespace belongs to (bookkeeping keys, even outside tenant-*)."""
    return namespace.removeprefix(NAMESPACE_PREFIX)
