"""A definition's immutable revisions as the API server holds them: ControllerRevisions
labelled with the definition's name and their number (`lifecycle/revisions.py` makes
them). The operator, the CLI and the web UI read them through this one query."""

from __future__ import annotations

from typing import Any

from tenantflow.kube.client import KubeApi
from tenantflow.vocabulary import DEFINITION_LABEL, REVISION_LABEL


async def list_revisions(
    kube: KubeApi, namespace: str, definition: str, number: int | None = None
) -> list[dict[str, Any]]:
    """The definition's revisions (only the one numbered `number`, if given), oldest first."""
    selector = f"{DEFINITION_LABEL}={definition}"
    if number is not None:
        selector += f",{REVISION_LABEL}={number}"
    found = await kube.list("apps/v1", "ControllerRevision", namespace, selector)
    return sorted(found, key=lambda r: int(r["revision"]))
