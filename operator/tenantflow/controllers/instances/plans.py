"""Plans written at runtime: the source a running workflow hands to `step.child(name,
definition, params, source={"files": ..., "main": ...})`, recorded as an immutable revision
of one of its tenant's WorkflowDefinitions before the child starts, pinned to it.

- The definition is the one the caller names, in the parent's namespace. The first write
  creates it, labelled `tenantflow.dev/written-at-runtime` and owned by no instance: it
  outlives the one that wrote it (diff, rollback, the UI's side-by-side view and later
  plans read its history) and goes with the tenant's namespace. Only a definition so
  labelled is revised this way; one applied by a person or by Git is refused
  (`DefinitionNotWrittenAtRuntime`), so a plan can never replace reviewed code.
- The source is checked as any definition's (`lifecycle.source.check`: size, file names,
  syntax, the entrypoint). A source one of the definition's revisions holds already (the
  same sha256) is that revision: nothing is written or spent. Otherwise one revision of the
  tenant's budget is spent (`supervisor/revision_budget.py`), a ControllerRevision numbered
  after the newest is created, annotated with the instance that wrote it, and the
  definition's `spec.source` becomes that source (its own reconcile then finds the
  revision there and lists it in its status; its active revision is the latest plan).
- What goes wrong is the child step's failure, with a reason: the check's (SyntaxError,
  EntrypointMissing, SourceTooLarge, InvalidFileName, ...), DefinitionNotWrittenAtRuntime,
  RuntimeRevisionBudgetExceeded, or SourceRefused (the API server refused a write, e.g.
  the namespace's quota of definitions). Anything else (an outage) raises: the start is
  tried again, as any child start is.

A definition's revisions are numbered under one lock (`RevisionCache.writing`), which the
definition controller's reconcile holds too. The parent's journal then records the
revision on the step, and its later starts carry that revision instead of the source, so
a replay never writes again (engine/children.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from tenantflow.controllers.revision_cache import RevisionCache
from tenantflow.durations import format_time
from tenantflow.engine.children import ChildSource
from tenantflow.kube.client import ApiException, KubeApi, message
from tenantflow.kube.events import EventRecorder
from tenantflow.kube.revisions import list_revisions
from tenantflow.lifecycle import revisions, source
from tenantflow.observability import metrics
from tenantflow.observability.logging import get_logger
from tenantflow.supervisor.revision_budget import RevisionBudget
from tenantflow.vocabulary import (
    API_VERSION,
    DEFAULT_ENTRYPOINT,
    DEFAULT_MAIN,
    DEFINITION,
    WRITTEN_AT_RUNTIME_LABEL,
    WRITTEN_BY_ANNOTATION,
    tenant_of,
)

log = get_logger("tenantflow.instance")
REFUSED = frozenset({400, 403, 404, 422})  # the write itself is wrong, or over a quota


@dataclass(frozen=True)
class Pinned:
    """The revision a plan was recorded as (the child runs it), or why it was not."""

    revision: int | None
    written: bool = False  # a new revision (else one that held the same source already)
    reason: str = ""
    message: str = ""


@dataclass
class Plans:
    kube: KubeApi
    cache: RevisionCache  # its lock numbers a definition's revisions (shared with the
    # definition controller by the composition root)
    recorder: EventRecorder | None = None
    budget: RevisionBudget = field(default_factory=RevisionBudget)

    async def record(
        self,
        namespace: str,
        definition: str,
        plan: ChildSource,
        *,
        writer: str,
        per_hour: int,
        now: dt.datetime,
    ) -> Pinned:
        """Record `plan` as a revision of `definition` (unless one holds it): the revision
        a child of `writer` (the instance that wrote it) runs, or why there is none."""
        tenant = tenant_of(namespace)
        async with self.cache.writing(namespace, definition):
            try:
                pinned = await self._record(namespace, definition, plan, writer, per_hour, now)
            except ApiException as exc:
                if exc.status not in REFUSED:
                    raise
                pinned = Pinned(
                    None,
                    reason="SourceRefused",
                    message=f"WorkflowDefinition {definition}: the API server refused the plan's "
                    f"revision: {message(exc)[:1024]}",
                )
        outcome = (
            "refused" if pinned.revision is None else "written" if pinned.written else "reused"
        )
        metrics.RUNTIME_REVISIONS.labels(tenant=tenant, outcome=outcome).inc()
        if pinned.revision is None:
            log.info(
                "plan refused",
                definition=f"{namespace}/{definition}",
                writer=writer,
                reason=pinned.reason,
            )
        return pinned

    async def _record(
        self,
        namespace: str,
        definition: str,
        plan: ChildSource,
        writer: str,
        per_hour: int,
        now: dt.datetime,
    ) -> Pinned:
        body = await self.kube.get(API_VERSION, DEFINITION, definition, namespace)
        labels = ((body or {}).get("metadata") or {}).get("labels") or {}
        if body is not None and labels.get(WRITTEN_AT_RUNTIME_LABEL) != "true":
            return Pinned(
                None,
                reason="DefinitionNotWrittenAtRuntime",
                message=f"WorkflowDefinition {definition} exists and was not written at "
                f"runtime (it has no label {WRITTEN_AT_RUNTIME_LABEL}=true): a plan may only "
                "revise a definition a plan created; name another definition",
            )
        code = source.Code(dict(plan.files), plan.main)
        spec = (body or {}).get("spec") or {}
        checked = source.check(code, spec.get("entrypoint", DEFAULT_ENTRYPOINT))
        if not checked.ok:
            return Pinned(
                None,
                reason=checked.reason,
                message=f"the plan for {definition}: {checked.message}"[:4096],
            )
        if body is not None:
            sha = revisions.identity(code, spec)
            revs = await list_revisions(self.kube, namespace, definition)
            same = next((r for r in revs if r["data"]["sha256"] == sha), None)
            if same is not None:
                await self._point_at(body, code, writer)
                return Pinned(int(same["revision"]))
        refusal = self.budget.take(tenant_of(namespace), per_hour)
        if refusal is not None:
            return Pinned(None, reason="RuntimeRevisionBudgetExceeded", message=refusal)
        if body is None:
            body = await self.kube.create(_definition(namespace, definition, code, writer))
            revs = []
        number = max((int(r["revision"]) for r in revs), default=0) + 1
        made = revisions.controller_revision(
            body, number=number, code=code, created_at=format_time(now.replace(microsecond=0))
        )
        made["metadata"]["annotations"][WRITTEN_BY_ANNOTATION] = writer
        made, _ = await self.kube.create_if_missing(made)
        await self._point_at(body, code, writer)
        if self.recorder is not None:
            await self.recorder.post(
                body,
                "Normal",
                "RevisionWritten",
                f"revision {made['revision']} written at runtime by instance {writer} "
                f"(sha256 {made['data']['sha256'][:12]})",
            )
        return Pinned(int(made["revision"]), written=True)

    async def _point_at(self, body: dict[str, Any], code: source.Code, writer: str) -> None:
        """The definition's spec.source becomes `code` (the latest plan), unless it is."""
        src = body["spec"].get("source") or {}
        files = src.get("files") or {}
        if files and source.Code(dict(files), src.get("main") or DEFAULT_MAIN) == code:
            return
        meta = body["metadata"]
        await self.kube.patch(
            API_VERSION,
            DEFINITION,
            meta["name"],
            meta["namespace"],
            {
                "metadata": {"annotations": {WRITTEN_BY_ANNOTATION: writer}},
                "spec": {
                    "source": {
                        "inline": None,
                        "configMapRef": None,
                        "language": None,
                        # a merge patch: the files the plan no longer has are removed
                        "files": {**dict.fromkeys(files), **code.files},
                        "main": code.main,
                    }
                },
            },
        )


def _definition(namespace: str, name: str, code: source.Code, writer: str) -> dict[str, Any]:
    """A definition a plan creates: its code, the default entrypoint and step defaults."""
    return {
        "apiVersion": API_VERSION,
        "kind": DEFINITION,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {WRITTEN_AT_RUNTIME_LABEL: "true"},
            "annotations": {WRITTEN_BY_ANNOTATION: writer},
        },
        "spec": {"source": {"files": dict(code.files), "main": code.main}},
    }
