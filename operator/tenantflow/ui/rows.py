"""One row per API object, shared by the web UI's lists and the CLI's tables (pure: a dict
in, a dict out). The UI sends a row as JSON; the CLI picks its columns from the same row,
so a tenant's phase or an instance's phase reads the same in both (an instance with no
status yet is Queued in each, a tenant with none is Provisioning).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tenantflow.vocabulary import ConditionType, namespace_of


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    """The condition of that type in `status.conditions` ({} when there is none)."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return {}


def tenant_row(tenant: dict[str, Any]) -> dict[str, Any]:
    """A Tenant: phase, usage against its limits, its sandbox's health."""
    spec, st = tenant.get("spec") or {}, tenant.get("status") or {}
    limits, usage = spec.get("limits") or {}, st.get("usage") or {}
    sandbox = condition(tenant, ConditionType.SANDBOX_READY)
    return {
        "name": tenant["metadata"]["name"],
        "namespace": st.get("namespace") or namespace_of(tenant["metadata"]["name"]),
        "phase": st.get("phase") or "Provisioning",
        "running": usage.get("runningInstances", 0),
        "queued": usage.get("queuedInstances", 0),
        "maxConcurrent": limits.get("maxConcurrentInstances"),
        "startsLastMinute": usage.get("startsLastMinute", 0),
        "maxStartsPerSecond": limits.get("maxInstanceStartsPerSecond"),
        "storageBytes": usage.get("storageBytes", 0),
        "storage": limits.get("storage"),
        "sandboxReady": sandbox.get("status") == "True",
        "sandboxMessage": sandbox.get("message") or sandbox.get("reason") or "",
    }


def archived_row(namespace: str, item: dict[str, Any]) -> dict[str, Any]:
    """An instance only its tenant's history holds (the history API's list item), in the
    shape of `instance_row`: the UI's list and the CLI's show it beside live ones."""
    return {
        "namespace": namespace,
        "name": item["name"],
        "definition": item.get("definition"),
        "revision": None,
        "phase": item.get("phase"),
        "steps": None,
        "created": item.get("createdAt"),
        "finished": item.get("finishedAt"),
        "waitingFor": None,
        "error": None,
        "archived": True,
    }


def instance_row(inst: dict[str, Any]) -> dict[str, Any]:
    """An instance in a list."""
    meta, spec, st = inst["metadata"], inst.get("spec") or {}, inst.get("status") or {}
    return {
        "namespace": meta["namespace"],
        "name": meta["name"],
        "definition": (spec.get("workflowRef") or {}).get("name"),
        "revision": st.get("revision"),
        "phase": st.get("phase") or "Queued",
        "steps": st.get("stepCount") or len(st.get("steps") or []),
        "created": meta.get("creationTimestamp"),
        "finished": st.get("finishedAt"),
        "waitingFor": st.get("waitingFor"),
        "error": (st.get("error") or {}).get("name"),
    }


def phase_counts(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many of these instance rows are in each phase."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["phase"]] = counts.get(row["phase"], 0) + 1
    return counts


def step_row(step: dict[str, Any]) -> dict[str, Any]:
    """One journal entry (`status.steps[]`): what it is, how it went, its error's name."""
    return {
        "name": step["name"],
        "kind": step["kind"],
        "state": step["state"],
        "attempts": step.get("attempts"),
        "startedAt": step.get("startedAt"),
        "finishedAt": step.get("finishedAt"),
        "error": (step.get("error") or {}).get("name"),
    }


def compensation(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The compensation phase, if one began: what triggered it, how far it is (its
    rollbacks are bars of the timeline, attempts and errors included)."""
    mark = next((s for s in steps if s.get("kind") == "compensate"), None)
    if mark is None:
        return None
    rollbacks = [s for s in steps if s.get("kind") == "rollback"]
    owed = sum(
        1
        for s in steps
        if s.get("kind") == "do" and s.get("state") == "Complete" and s.get("rollback")
    )
    return {
        "state": mark.get("state"),
        "trigger": mark.get("error") or {},
        "startedAt": mark.get("startedAt"),
        "finishedAt": mark.get("finishedAt"),
        "owed": owed,
        "done": sum(1 for s in rollbacks if s.get("state") == "Complete"),
        "rollbacks": [
            {
                "name": s["name"],
                "state": s.get("state"),
                "attempts": s.get("attempts", 0),
                "error": (s.get("error") or {}).get("name"),
            }
            for s in rollbacks
        ],
    }


def definition_row(wfd: dict[str, Any]) -> dict[str, Any]:
    """A WorkflowDefinition in a list: its active and latest revisions, its rollout."""
    st = wfd.get("status") or {}
    return {
        "name": wfd["metadata"]["name"],
        "namespace": wfd["metadata"].get("namespace"),
        "active": st.get("activeRevision"),
        "latest": st.get("latestRevision"),
        "rollout": (st.get("rollout") or {}).get("phase"),
    }


def revision_row(revision: dict[str, Any], active: int | None) -> dict[str, Any]:
    """One stored revision of a definition (kube/revisions.py's shape)."""
    return {
        "revision": revision["revision"],
        "sha256": revision["data"]["sha256"],
        "createdAt": revision["data"].get("createdAt"),
        "active": revision["revision"] == active,
    }


def kube_event(e: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes Event about an object: when (its newest time), what and how often."""
    return {
        "time": e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp"),
        "type": e.get("type"),
        "reason": e.get("reason"),
        "message": e.get("message"),
        "count": e.get("count", 1),
    }
