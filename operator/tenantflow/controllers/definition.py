"""WorkflowDefinition controller: check the source, keep immutable revisions, set status."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenantflow import conditions
from tenantflow.api.definition import DEFAULT_MAIN
from tenantflow.controllers.instances.revisions import RevisionCache
from tenantflow.controllers.work_queue import WorkQueue
from tenantflow.durations import format_time
from tenantflow.kube import events
from tenantflow.kube.client import KubeApi
from tenantflow.lifecycle import revisions, source
from tenantflow.observability.logging import get_logger
from tenantflow.vocabulary import API_VERSION, DEFINITION, FINISHED, INSTANCE, ConditionType

log = get_logger("tenantflow.definition")


@dataclass
class DefinitionController:
    kube: KubeApi
    revision_cache: RevisionCache  # shared with the instance controller
    wake_instance: Callable[[str], None]  # a queued instance may start now

    def __post_init__(self) -> None:
        self.queue = WorkQueue(self.reconcile, name="definitions")

    def on_event(self, kind: str, namespace: str, name: str) -> None:
        self.revision_cache.forget_definition(namespace, name)
        if kind != "DELETED":
            self.queue.request(f"{namespace}/{name}")

    async def reconcile(self, key: str) -> None:
        for queued in await reconcile(self.kube, key):
            self.wake_instance(queued)


async def resolve_source(kube: KubeApi, body: dict[str, Any]) -> tuple[source.Code | None, str]:
    """(code, problem): the inline module, the inline files, or the ConfigMap's key (one
    module) or `.py` keys (several)."""
    src = body["spec"]["source"]
    main = src.get("main") or DEFAULT_MAIN
    if src.get("inline"):
        return source.Code.single(src["inline"]), ""
    if src.get("files"):
        return source.Code(dict(src["files"]), main), ""
    ref = src["configMapRef"]
    cm = await kube.get("v1", "ConfigMap", ref["name"], body["metadata"]["namespace"])
    if cm is None:
        return None, f"ConfigMap {ref['name']} (spec.source.configMapRef) does not exist"
    data = cm.get("data") or {}
    if ref.get("key"):
        text = data.get(ref["key"])
        if text is None:
            return None, f"ConfigMap {ref['name']} has no key {ref['key']!r}"
        return source.Code.single(text), ""
    files = {k: v for k, v in data.items() if k.endswith(".py")}
    if not files:
        return None, (
            f"ConfigMap {ref['name']} has no key ending in .py (spec.source.configMapRef "
            "without a key takes every .py key as a module)"
        )
    return source.Code(files, main), ""


async def list_revisions(kube: KubeApi, namespace: str, definition: str) -> list[dict[str, Any]]:
    return await kube.list(
        "apps/v1", "ControllerRevision", namespace, f"{revisions.DEFINITION_LABEL}={definition}"
    )


async def reconcile(kube: KubeApi, key: str) -> list[str]:
    """Check, revise, trim and report one definition; returns the keys of its instances
    queued for lack of a ready revision, when it just got one."""
    ns, name = key.split("/", 1)
    body = await kube.get(API_VERSION, DEFINITION, name, ns)
    if body is None:
        return []
    spec, old = body["spec"], body.get("status") or {}
    code, problem = await resolve_source(kube, body)
    check = (
        source.check(code, spec.get("entrypoint", "run"))
        if code is not None
        else source.SourceCheck(False, "SourceNotFound", problem)
    )
    revs = await list_revisions(kube, ns, name)
    current: int | None = None
    if check.ok and code is not None:
        sha = code.sha256
        match = [r for r in revs if r["data"]["sha256"] == sha]
        if match:
            current = match[0]["revision"]
        else:
            current = max((r["revision"] for r in revs), default=0) + 1
            rev, _ = await kube.create_if_missing(
                revisions.controller_revision(
                    body,
                    number=current,
                    code=code,
                    created_at=format_time(dt.datetime.now(dt.UTC).replace(microsecond=0)),
                )
            )
            revs.append(rev)
            await events.post(
                kube, body, "Normal", "RevisionCreated", f"revision {current} (sha256 {sha[:12]})"
            )
    numbers = {r["revision"] for r in revs}
    rolled = revisions.rolled_back_to(body)
    # Git's spec.pinnedRevision wins; then the CLI's rollback (an annotation); then the newest
    pinned, field = (
        (spec.get("pinnedRevision"), "spec.pinnedRevision")
        if spec.get("pinnedRevision") is not None
        else (rolled, f"annotation {revisions.ROLLBACK_ANNOTATION}")
    )
    if pinned is not None and pinned not in numbers:
        check = source.SourceCheck(
            False,
            "PinnedRevisionNotFound",
            f"{field} {pinned} does not exist; known: {sorted(numbers)}",
        )
    active = pinned if pinned in numbers else current or old.get("activeRevision")
    instances = [
        i
        for i in await kube.list(API_VERSION, INSTANCE, ns)
        if i["spec"]["workflowRef"]["name"] == name
    ]
    keep = _revisions_in_use(instances) | {n for n in (active, current) if n is not None}
    for doomed in revisions.to_delete(revs, spec.get("revisionHistoryLimit", 50), keep=keep):
        await kube.delete("apps/v1", "ControllerRevision", doomed, ns)
        revs = [r for r in revs if r["metadata"]["name"] != doomed]
    new = {
        "latestRevision": max((r["revision"] for r in revs), default=None),
        "activeRevision": active,
        "revisions": revisions.summary(revs),
        "conditions": conditions.merge(
            old.get("conditions"),
            conditions.health(
                check.ok,
                check.reason,
                check.message if check.ok else f"{check.message}; fix spec.source and apply it",
                stalled=not check.ok,  # no retry makes bad code good: Git must change
            ),
            generation=body["metadata"].get("generation"),
        ),
        "observedGeneration": body["metadata"].get("generation"),
        "rolledBackTo": rolled,
    }
    if {k: old.get(k) for k in new} == new:
        return []
    await kube.patch(API_VERSION, DEFINITION, name, ns, {"status": new}, subresource="status")
    was = {c.get("type"): c for c in old.get("conditions") or []}.get(ConditionType.READY, {})
    if rolled != old.get("rolledBackTo"):
        said = (
            f"new instances run revision {rolled} (tenantflow rollback); spec.pinnedRevision "
            "overrides it"
            if rolled is not None
            else f"rollback cleared: new instances run revision {active}"
        )
        await events.post(kube, body, "Normal", "RolledBack" if rolled else "RollbackCleared", said)
    if not check.ok and was.get("reason") != check.reason:
        await events.post(kube, body, "Warning", check.reason, check.message)
    if active is None or active == old.get("activeRevision"):
        return []
    return [
        f"{ns}/{inst['metadata']['name']}"
        for inst in instances
        if not (inst.get("status") or {}).get("revision")
    ]


def _revisions_in_use(instances: list[dict[str, Any]]) -> set[int]:
    """Revisions pinned by the definition's unfinished instances (never deleted)."""
    return {
        st["revision"]
        for inst in instances
        if (st := inst.get("status") or {}).get("revision") and st.get("phase") not in FINISHED
    }
