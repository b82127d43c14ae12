"""Immutable revisions of a definition, stored as ControllerRevision objects."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tenantflow.lifecycle.source import Code
from tenantflow.tenancy.manifests import MANAGED_BY
from tenantflow.vocabulary import (
    DEFAULT_ENTRYPOINT,
    DEFINITION_LABEL,
    REVISION_LABEL,
    ROLLBACK_ANNOTATION,
    SHA_ANNOTATION,
)

# where `tenantflow rollback` records its choice: an annotation, not spec.pinnedRevision, so
# a GitOps tool that owns the spec neither shows drift nor undoes it on its next sync


def rolled_back_to(definition: dict[str, Any]) -> int | None:
    """The revision the rollback annotation names (None when absent or not a number)."""
    value = ((definition.get("metadata") or {}).get("annotations") or {}).get(ROLLBACK_ANNOTATION)
    return int(value) if isinstance(value, str) and value.isdigit() and int(value) > 0 else None


def identity(code: Code, spec: dict[str, Any]) -> str:
    """What makes a revision new: its code, and its search attributes when it declares
    any (instances label themselves by the revision they start on; a definition without
    them keeps the digest of its code alone, as revisions had before)."""
    declared = spec.get("searchAttributes") or {}
    if not declared:
        return code.sha256
    canonical = json.dumps(declared, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{code.sha256}\0attributes\0{canonical}".encode()).hexdigest()


def name_for(definition: str, sha: str) -> str:
    return f"{definition[:200]}-{sha[:12]}"


def controller_revision(
    definition: dict[str, Any], *, number: int, code: Code, created_at: str
) -> dict[str, Any]:
    spec = definition["spec"]
    meta, sha = definition["metadata"], identity(code, spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": name_for(meta["name"], sha),
            "namespace": meta["namespace"],
            "labels": {**MANAGED_BY, DEFINITION_LABEL: meta["name"], REVISION_LABEL: str(number)},
            "annotations": {SHA_ANNOTATION: sha},
            "ownerReferences": [
                {
                    "apiVersion": definition["apiVersion"],
                    "kind": "WorkflowDefinition",
                    "name": meta["name"],
                    "uid": meta["uid"],
                }
            ],
        },
        "revision": number,
        "data": {
            **code.revision_data(),
            "entrypoint": spec.get("entrypoint", DEFAULT_ENTRYPOINT),
            "defaults": spec.get("defaults", {}),
            **(
                {"searchAttributes": spec["searchAttributes"]}
                if spec.get("searchAttributes")
                else {}
            ),
            "sha256": sha,
            "createdAt": created_at,
        },
    }


def to_delete(revisions: list[dict[str, Any]], limit: int, keep: set[int]) -> list[str]:
    """Names of the oldest revisions beyond `limit`, never one in `keep` (active or in use)."""
    ordered = sorted(revisions, key=lambda r: r["revision"], reverse=True)
    surplus = [r for r in ordered[limit:] if r["revision"] not in keep]
    return [r["metadata"]["name"] for r in surplus]


def summary(revisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """status.revisions: newest last."""
    return [
        {
            "revision": r["revision"],
            "sha256": r["data"]["sha256"],
            "createdAt": r["data"].get("createdAt"),
        }
        for r in sorted(revisions, key=lambda r: r["revision"])
    ]
