"""WorkflowDefinition controller: check the source, keep immutable revisions, roll new ones
out (lifecycle.rollout decides), set status."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenantflow import conditions
from tenantflow.controllers.ownership import Gate, sole_replica
from tenantflow.controllers.persist import Persist, unchanged_spec
from tenantflow.controllers.revision_cache import RevisionCache
from tenantflow.controllers.work_queue import WorkQueue, namespace_in_key
from tenantflow.durations import format_time
from tenantflow.engine.typescript import EXTENSIONS
from tenantflow.kube.client import KubeApi
from tenantflow.kube.events import EventRecorder
from tenantflow.kube.revisions import list_revisions
from tenantflow.lifecycle import revisions, rollout, source
from tenantflow.lifecycle.rollout import Assignment
from tenantflow.observability import metrics
from tenantflow.observability.logging import get_logger
from tenantflow.vocabulary import (
    API_VERSION,
    DEFAULT_ENTRYPOINT,
    DEFAULT_MAIN,
    DEFAULT_REVISION_HISTORY,
    DEFINITION,
    FINISHED,
    INSTANCE,
    ROLLBACK_ANNOTATION,
    WORKFLOW_REF_FIELD,
    ConditionType,
    Language,
    ObjectKey,
    RolloutPhase,
    object_key,
    split_key,
    tenant_of,
)

log = get_logger("tenantflow.definition")
ROLLOUT_TALLY_DELAY = 1.0  # seconds: finished instances of a rollout counted at most this often
ROLLOUT_RECHECK = 30.0  # seconds: a rollout underway is re-read at least this often
STALLED_ROLLOUTS = {
    RolloutPhase.ROLLED_BACK: "RolloutRolledBack",
    RolloutPhase.ABORTED: "RolloutAborted",
}
# the Event a rollout's end is said with -> how it ended (tenantflow_rollouts_ended_total)
ENDED_BY = {
    f"Rollout{phase}": str(phase)
    for phase in RolloutPhase
    if phase not in (RolloutPhase.PROGRESSING, RolloutPhase.PAUSED)
}


@dataclass
class DefinitionController:
    kube: KubeApi
    revision_cache: RevisionCache  # shared with the instance controller
    wake_instance: Callable[[ObjectKey], None]  # a queued instance may start now
    # whether this replica may work on a namespace now (controllers/ownership.py): asked
    # by the queue before every reconcile and by the persist before the status write
    gate: Gate = sole_replica
    recorder: EventRecorder | None = None  # the operator's one recorder (else its own)

    def __post_init__(self) -> None:
        self.events = self.recorder or EventRecorder(self.kube)
        self.queue: WorkQueue[ObjectKey] = WorkQueue(
            self.reconcile,
            namespace_of=namespace_in_key,
            name="definitions",
            gate=lambda namespace: self.gate(namespace),
        )
        self.persist = Persist(self.kube, self.queue.gate)
        self.rolling: set[ObjectKey] = set()  # definitions with a rollout underway

    def on_event(self, kind: str, namespace: str, name: str) -> None:
        self.revision_cache.forget_definition(namespace, name)
        if kind != "DELETED":
            self.queue.request(object_key(namespace, name))

    async def reconcile(self, key: ObjectKey) -> None:
        async with self.revision_cache.writing(*split_key(key)):  # (revision numbers)
            done = await reconcile(self.kube, self.events, self.persist, key)
        if not done.written:
            self.queue.request(key)  # again from fresh reads, if the shard is still ours
            return
        for queued in done.queued:
            self.wake_instance(queued)
        if done.rolling:
            self.rolling.add(key)
            self.queue.request_after(key, ROLLOUT_RECHECK)  # outcomes missed by any watch
        else:
            self.rolling.discard(key)

    def instance_finished(self, namespace: str, definition: str) -> None:
        """An instance of a definition finished: a rollout underway counts it soon (one
        reconcile for a burst of them)."""
        key = object_key(namespace, definition)
        if key in self.rolling:
            self.queue.request_within(key, ROLLOUT_TALLY_DELAY)


async def resolve_source(kube: KubeApi, body: dict[str, Any]) -> tuple[source.Code | None, str]:
    """(code, problem): the inline module, the inline files, or the ConfigMap's key (one
    module) or its keys of the language (several)."""
    src = body["spec"]["source"]
    main = src.get("main") or DEFAULT_MAIN
    language = Language(src.get("language") or Language.PYTHON)
    if src.get("inline"):
        return source.Code.single(src["inline"], language), ""
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
        return source.Code.single(text, language), ""
    extensions = (".py",) if language is Language.PYTHON else tuple(EXTENSIONS)
    files = {k: v for k, v in data.items() if k.endswith(extensions)}
    if not files:
        return None, (
            f"ConfigMap {ref['name']} has no key ending in {' or '.join(extensions)} "
            f"(spec.source.configMapRef without a key takes every such key as a module of "
            f"the {language} workflow; spec.source.language says which)"
        )
    return source.Code(files, main), ""


@dataclass(frozen=True)
class Reconciled:
    queued: list[ObjectKey]  # keys of instances queued for lack of a revision that may start now
    rolling: bool  # a rollout is underway: its instances' outcomes matter to it
    written: bool = True  # False: its status changed and could not be written


@dataclass(frozen=True)
class Observed:
    """What one reconcile read of a definition: all `plan` decides from."""

    body: dict[str, Any]
    code: source.Code | None
    problem: str  # why there is no code (`code` None)
    revisions: list[dict[str, Any]]  # its ControllerRevisions, oldest first
    instances: list[dict[str, Any]]  # its instances (the API server's field selector)
    now: dt.datetime


@dataclass(frozen=True)
class DefinitionPlan:
    """What one reconcile does, decided without I/O: the revision to create, those to
    delete, the status to write and what to say; then the instances that may start."""

    create: dict[str, Any] | None  # a new ControllerRevision holding the code
    delete: list[str]  # ControllerRevisions beyond revisionHistoryLimit
    status: dict[str, Any]  # the whole status it should have
    changed: bool  # status differs from what is stored
    check: source.SourceCheck
    said: list[rollout.Event]
    rolling: bool
    queued: list[ObjectKey]  # instances waiting for a revision, if which one runs changed


async def reconcile(
    kube: KubeApi,
    recorder: EventRecorder,
    persist: Persist,
    key: ObjectKey,
    now: dt.datetime | None = None,
) -> Reconciled:
    """Read, plan and apply one definition."""
    observed = await observe(kube, key, now)
    if observed is None:
        return Reconciled([], False)
    return await apply(kube, recorder, persist, observed, plan(observed))


async def observe(kube: KubeApi, key: ObjectKey, now: dt.datetime | None = None) -> Observed | None:
    """The reads of one reconcile (None: the definition is gone)."""
    ns, name = split_key(key)
    body = await kube.get(API_VERSION, DEFINITION, name, ns)
    if body is None:
        return None
    code, problem = await resolve_source(kube, body)
    return Observed(
        body=body,
        code=code,
        problem=problem,
        revisions=await list_revisions(kube, ns, name),
        instances=await kube.list(
            API_VERSION, INSTANCE, ns, field_selector=f"{WORKFLOW_REF_FIELD}={name}"
        ),
        now=now or dt.datetime.now(dt.UTC),
    )


def plan(o: Observed) -> DefinitionPlan:
    """Check, revise, roll out, trim: the decisions of one reconcile (pure)."""
    body, now = o.body, o.now
    spec, old, meta = body["spec"], body.get("status") or {}, body["metadata"]
    check = (
        source.check(o.code, spec.get("entrypoint", DEFAULT_ENTRYPOINT))
        if o.code is not None
        else source.SourceCheck(False, "SourceNotFound", o.problem)
    )
    revs, create, current = list(o.revisions), None, None
    if check.ok and o.code is not None:
        current, create = _revision_for(body, o.code, revs, now)
        if create is not None:
            revs.append(create)
    numbers = {r["revision"] for r in revs}
    rolled = revisions.rolled_back_to(body)
    # Git's spec.pinnedRevision wins; then the CLI's rollback (an annotation); then the
    # stable revision (and the canary of a rollout underway)
    pinned, field = (
        (spec.get("pinnedRevision"), "spec.pinnedRevision")
        if spec.get("pinnedRevision") is not None
        else (rolled, f"annotation {ROLLBACK_ANNOTATION}")
    )
    if pinned is not None and pinned not in numbers:
        check = source.SourceCheck(
            False,
            "PinnedRevisionNotFound",
            f"{field} {pinned} does not exist; known: {sorted(numbers)}",
        )
    held = f"{field} pins revision {pinned}" if pinned in numbers else None
    try:
        command = rollout.Command.parse(meta.get("annotations"))
    except ValueError as exc:
        command, check = None, source.SourceCheck(False, "RolloutCommandInvalid", str(exc))
    verdict = rollout.decide(
        rollout.RolloutState.of(old.get("rollout")),
        stable=old.get("stableRevision", old.get("activeRevision")),
        target=current,
        plan=rollout.Plan.of(spec.get("rollout")),
        held=held,
        outcomes=[_outcome(i) for i in o.instances],
        command=command,
        now=now,
    )
    active = pinned if held else verdict.stable
    state = verdict.state
    keep = _revisions_in_use(o.instances) | {
        n for n in (active, current, state.revision if state else None) if n is not None
    }
    delete = revisions.to_delete(
        revs, spec.get("revisionHistoryLimit", DEFAULT_REVISION_HISTORY), keep=keep
    )
    revs = [r for r in revs if r["metadata"]["name"] not in delete]
    new = {
        "latestRevision": max((r["revision"] for r in revs), default=None),
        "activeRevision": active,
        "stableRevision": verdict.stable,
        "rollout": state.to_status() if state else None,
        "revisions": revisions.summary(revs),
        "conditions": conditions.merge(
            old.get("conditions"),
            _health(check, state if state and state.revision == current and not held else None),
            generation=meta.get("generation"),
            now=now,
        ),
        "observedGeneration": meta.get("generation"),
        "rolledBackTo": rolled,
    }
    assignment = Assignment.of(new)
    return DefinitionPlan(
        create=create,
        delete=delete,
        status=new,
        changed={k: old.get(k) for k in new} != new,
        check=check,
        said=verdict.events,
        rolling=state is not None and state.phase == RolloutPhase.PROGRESSING,
        queued=[]
        if assignment in (None, Assignment.of(old))
        else [
            object_key(meta["namespace"], i["metadata"]["name"])
            for i in o.instances
            if not (i.get("status") or {}).get("revision")
        ],
    )


async def apply(
    kube: KubeApi, recorder: EventRecorder, persist: Persist, o: Observed, p: DefinitionPlan
) -> Reconciled:
    """Do what `p` decided: the new revision, the deletions, one status write, Events."""
    body, ns = o.body, o.body["metadata"]["namespace"]
    if p.create is not None:
        made, _ = await kube.create_if_missing(p.create)
        if made["data"]["sha256"] != p.create["data"]["sha256"]:
            return Reconciled([], p.rolling, written=False)  # another took its number
        await recorder.post(
            body,
            "Normal",
            "RevisionCreated",
            f"revision {made['revision']} (sha256 {made['data']['sha256'][:12]})",
        )
    for doomed in p.delete:
        await kube.delete("apps/v1", "ControllerRevision", doomed, ns)
    if not p.changed:
        return Reconciled([], p.rolling)
    # re-committed only on the spec and the annotations (rollback, rollout commands) it
    # was decided on; anything else is decided again
    annotations = body["metadata"].get("annotations")
    same = unchanged_spec(body, p.status)
    written = await persist.status(
        DEFINITION,
        body,
        lambda b: same(b) if b["metadata"].get("annotations") == annotations else None,
    )
    if written is None:
        return Reconciled([], p.rolling, written=False)
    await _tell(recorder, body, p)
    return Reconciled(p.queued, p.rolling)


def _revision_for(
    body: dict[str, Any], code: source.Code, revs: list[dict[str, Any]], now: dt.datetime
) -> tuple[int, dict[str, Any] | None]:
    """The number of the revision holding `code`, and the ControllerRevision to create
    when none holds it yet (numbered after the newest)."""
    sha = revisions.identity(code, body["spec"])
    match = [r for r in revs if r["data"]["sha256"] == sha]
    if match:
        return int(match[0]["revision"]), None
    number = max((r["revision"] for r in revs), default=0) + 1
    return number, revisions.controller_revision(
        body, number=number, code=code, created_at=format_time(now.replace(microsecond=0))
    )


def _outcome(instance: dict[str, Any]) -> rollout.Outcome:
    st = instance.get("status") or {}
    return rollout.Outcome(st.get("revision"), st.get("phase"), st.get("startedAt"))


def _health(
    check: source.SourceCheck, state: rollout.RolloutState | None
) -> list[conditions.ConditionUpdate]:
    """Ready/Reconciling/Stalled: bad code or a bad pin stalls until Git changes; the
    source's own revision rolled back or aborted stalls too (the spec asks for code that
    does not run); a rollout underway is Reconciling."""
    if not check.ok:
        message = f"{check.message}; fix spec.source and apply it"
        if check.reason == "RolloutCommandInvalid":
            message = f"{check.message}, or remove it"
        return conditions.health(False, check.reason, message, stalled=True)
    if state is not None and state.phase in STALLED_ROLLOUTS:
        return conditions.health(False, STALLED_ROLLOUTS[state.phase], state.message, stalled=True)
    if state is not None and state.phase == RolloutPhase.PROGRESSING:
        return conditions.health(False, "RolloutProgressing", state.message, reconciling=True)
    return conditions.health(True, check.reason, check.message)


async def _tell(recorder: EventRecorder, body: dict[str, Any], p: DefinitionPlan) -> None:
    """Events and metrics for what changed."""
    meta, old, new = body["metadata"], body.get("status") or {}, p.status
    tenant = tenant_of(meta["namespace"])
    for type_, reason, message in p.said:
        await recorder.post(body, type_, reason, message)
        if reason in ENDED_BY:
            metrics.ROLLOUTS_ENDED.labels(tenant=tenant, phase=ENDED_BY[reason]).inc()
    if new["rollout"]:
        metrics.ROLLOUT_WEIGHT.labels(tenant=tenant, definition=meta["name"]).set(
            new["rollout"]["weight"]
        )
    rolled = new["rolledBackTo"]
    if rolled != old.get("rolledBackTo"):
        message = (
            f"new instances run revision {rolled} (tenantflow rollback); spec.pinnedRevision "
            "overrides it"
            if rolled is not None
            else f"rollback cleared: new instances run revision {new['activeRevision']}"
        )
        await recorder.post(body, "Normal", "RolledBack" if rolled else "RollbackCleared", message)
    was = {c.get("type"): c for c in old.get("conditions") or []}.get(ConditionType.READY, {})
    if not p.check.ok and was.get("reason") != p.check.reason:
        await recorder.post(body, "Warning", p.check.reason, p.check.message)


def _revisions_in_use(instances: list[dict[str, Any]]) -> set[int]:
    """Revisions pinned by the definition's unfinished instances (never deleted): the one
    each runs, or, before it started, the one its spec names (a child started on a plan
    written at runtime is created pinned to its new revision)."""
    return {
        pinned
        for inst in instances
        if (st := inst.get("status") or {}).get("phase") not in FINISHED
        and (
            pinned := st.get("revision")
            or ((inst.get("spec") or {}).get("workflowRef") or {}).get("revision")
        )
    }
