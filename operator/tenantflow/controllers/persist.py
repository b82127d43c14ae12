"""The one way every controller writes a status: fenced, guarded, re-committed.

As Argo's `operator.go` persists a workflow once per reconcile, every controller here
ends its reconcile with one `Persist.status`:
- **fenced**: the ownership gate is asked right before each write, so a replica that
  lost the shard while the reconcile ran writes nothing (a queue's gate only stops runs
  that had not started);
- **guarded**: the patch carries the resourceVersion the status was composed from, so
  nothing another writer changed meanwhile is overwritten (409 instead);
- **re-committed**: on a 409 the object is read again and `compose` is asked what to
  write on it; it answers None when its result no longer holds (the spec moved, the
  journal moved), and the caller's reconcile then runs again from fresh reads.

A status that was not written (fenced, conflicting, gone) returns None: the caller
requests its key again, and the queue's gate decides whether it runs here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenantflow.controllers.ownership import Gate, Verdict, sole_replica
from tenantflow.kube.client import ApiException, KubeApi
from tenantflow.observability import metrics
from tenantflow.vocabulary import API_VERSION

RECOMMITS = 3  # fresh reads after 409s before a write is given up for a new reconcile

Body = dict[str, Any]
Compose = Callable[[Body], Body | None]  # an object as read -> its status patch, or None


def unchanged_spec(original: Body, patch: Body) -> Compose:
    """The re-commit rule of a status derived from the spec: the same patch, as long as
    the spec it was derived from is the one read again (a label, an annotation or
    another status field moved, not the generation)."""
    generation = original["metadata"].get("generation")

    def compose(body: Body) -> Body | None:
        return patch if body["metadata"].get("generation") == generation else None

    return compose


@dataclass
class Persist:
    kube: KubeApi
    gate: Gate = sole_replica

    async def status(
        self,
        kind: str,
        body: Body,
        compose: Compose,
        *,
        fence: str | None = None,
        recommits: int = RECOMMITS,
    ) -> Body | None:
        """Write `compose(body)` as `body`'s status; the written object, or None when it
        was not written. `fence` is the namespace whose shard owns the object (a
        namespaced object's own, by default)."""
        meta = body["metadata"]
        fence = fence or meta["namespace"]
        status, conflicts = compose(body), 0
        while status is not None and self._may_write(fence):
            try:
                written = await self.kube.patch(
                    API_VERSION, kind, meta["name"], meta.get("namespace"),
                    {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
                     "status": status},
                    subresource="status",
                )  # fmt: skip
            except ApiException as exc:
                if exc.status == 404:
                    return None
                if exc.status != 409:
                    raise
            else:
                if conflicts:
                    metrics.STATUS_CONFLICTS.labels(kind=kind, outcome="recommitted").inc()
                return written
            conflicts += 1
            fresh = (
                await self.kube.get(API_VERSION, kind, meta["name"], meta.get("namespace"))
                if conflicts <= recommits
                else None
            )
            body, status = (fresh, compose(fresh)) if fresh is not None else (body, None)
        if conflicts:
            metrics.STATUS_CONFLICTS.labels(kind=kind, outcome="given_up").inc()
        return None

    async def labels(
        self, kind: str, body: Body, labels: dict[str, str | None], *, fence: str | None = None
    ) -> Body | None:
        """One metadata merge patch of `body`'s labels (None removes one), fenced as a
        status write; not guarded by a resourceVersion: it names only its own labels, so it
        overwrites nothing another writer changed. The written object, or None when it was
        not written (fenced, gone); other refusals raise ApiException."""
        meta = body["metadata"]
        if not self._may_write(fence or meta["namespace"]):
            return None
        try:
            return await self.kube.patch(
                API_VERSION,
                kind,
                meta["name"],
                meta.get("namespace"),
                {"metadata": {"labels": labels}},
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _may_write(self, fence: str) -> bool:
        """The gate, right before the write: the shard may have moved during the reconcile."""
        if self.gate(fence) is Verdict.ACT:
            return True
        metrics.FENCED_WRITES.inc()
        return False
