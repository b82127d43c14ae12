"""Which ControllerRevision an instance runs: pinned once it started, else the one its
spec names, else its definition's active revision (or, during a rollout, the canary for
the names the rollout's weight picks); cached, as revisions are immutable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tenantflow import conditions
from tenantflow.controllers.instances.drive import Drive
from tenantflow.controllers.revision_cache import RevisionCache
from tenantflow.durations import format_duration, parse_time
from tenantflow.kube.client import KubeApi
from tenantflow.kube.revisions import list_revisions
from tenantflow.lifecycle.rollout import Assignment
from tenantflow.vocabulary import API_VERSION, DEFINITION, ConditionType, Phase

MISSING_DEFINITION_RETRY = 5.0  # seconds; its own event wakes the instance sooner
# seconds an instance may wait for its definition before the wait is a Warning: applied
# together (every example, every GitOps sync), the instance is often read before the
# definition's first revision exists, a race that ends within seconds
DEFINITION_GRACE = 60.0
MISSING_REVISION_RETRY = 10.0


@dataclass
class RevisionResolver:
    kube: KubeApi
    cache: RevisionCache

    async def resolve(self, d: Drive) -> dict[str, Any] | None:
        """The revision `d`'s instance runs; None (with the reason set on `d`) when there
        is none yet."""
        v = d.view
        number = d.status.get("revision") or v.pinned_revision or await self._active(d)
        if number is None:
            return None
        cache_key = (v.namespace, v.workflow, int(number))
        cached = self.cache.revisions.get(cache_key)
        if cached is not None:
            return cached
        found = await list_revisions(self.kube, v.namespace, v.workflow, int(number))
        if not found:
            d.condition(
                ConditionType.ADMITTED,
                False,
                "RevisionNotFound",
                f"revision {number} of {v.workflow} does not exist",
                phase=Phase.QUEUED if not d.status.get("revision") else None,
            )
            d.later(MISSING_REVISION_RETRY)
            return None
        self.cache.revisions.put(cache_key, found[0])
        return found[0]

    async def _active(self, d: Drive) -> int | None:
        """The definition's active revision, or its canary (by the instance's name)."""
        v = d.view
        assigned = self.cache.active.get((v.namespace, v.workflow))
        if assigned is not None:
            return assigned.revision_for(v.name)
        definition = await self.kube.get(API_VERSION, DEFINITION, v.workflow, v.namespace)
        assigned = Assignment.of((definition or {}).get("status") or {})
        if assigned is not None:
            self.cache.active.put((v.namespace, v.workflow), assigned)
            return assigned.revision_for(v.name)
        if definition is None:
            why = f"WorkflowDefinition {v.workflow} does not exist"
            reason = "DefinitionNotFound"
        else:
            stored = (definition.get("status") or {}).get("conditions")
            ready = conditions.find(stored, ConditionType.READY)
            said = f" ({ready.get('reason')}: {ready.get('message')})" if ready else ""
            why = f"WorkflowDefinition {v.workflow} is not Ready{said}"
            reason = "DefinitionNotReady"
        waited = (d.now - parse_time(v.created)).total_seconds() if v.created else DEFINITION_GRACE
        if waited < DEFINITION_GRACE:  # the normal race: said on the condition, no Warning
            reason, why = "WaitingForDefinition", f"{why} yet"
        else:
            why += f" after {format_duration(DEFINITION_GRACE)}"
        d.condition(
            ConditionType.ADMITTED,
            False,
            reason,
            f"{why}; the instance stays Queued until it has a ready revision",
            phase=Phase.QUEUED,
            warn=waited >= DEFINITION_GRACE,
        )
        d.later(MISSING_DEFINITION_RETRY)  # also how a wait past the grace becomes a Warning
        return None
