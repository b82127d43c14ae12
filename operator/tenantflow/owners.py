"""ownerReferences: the controller reference an object gets from what made it, and which
object controls another (pure dicts; the tenant's objects, a parent's children and a
schedule's runs all use it)."""

from __future__ import annotations

from typing import Any

from tenantflow.vocabulary import API_VERSION


def controller_ref(kind: str, name: str, uid: str | None) -> dict[str, Any]:
    """The reference a made object carries: deleting the owner deletes it."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _controller(body: dict[str, Any]) -> dict[str, Any] | None:
    for ref in body["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def controlled_by(body: dict[str, Any], uid: str | None) -> bool:
    """`body` is controlled by the object with this uid."""
    ref = _controller(body)
    return ref is not None and ref.get("uid") == uid


def controller_name(body: dict[str, Any], kind: str) -> str | None:
    """The name of the `kind` object that controls `body`, if one does."""
    ref = _controller(body)
    return str(ref.get("name")) if ref is not None and ref.get("kind") == kind else None
