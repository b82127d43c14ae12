"""Child workflows on the operator's side: a parent's children read, started and ended.

A child is a WorkflowInstance in its parent's namespace, controlled by the parent
(ownerReferences: deleting the parent deletes it) and labelled with the parent's uid, so
one list finds a parent's children (to end them). Its name is derived here from the
parent's name, the step and the parent's epoch (`engine.children.child_name`), never
taken from the sandbox's answer, so tenant code cannot aim a start at another object. A
finished child requests a drive of its parent; the parent's drive reads the children the
watch does not show active and hands the finished ones to the next advance. A parent
that finishes terminates the children it still awaited (Temporal's default parent-close
policy).

The watch's word that a child is still active is trusted for a while only: a waiting
parent is driven again by then and reads every child it awaits, so a finish the watch
never delivered (a cut watch, an event dropped while the lease was renewed late) strands
nobody, whatever else went wrong (issue 41). The while starts at RESYNC_FIRST and doubles
with each re-read that finds nothing new, up to CHILD_RESYNC: a missed finish soon after
the faults that caused it is found within seconds, and a parent awaiting a child for
hours costs a read every few minutes. What a re-read finds is counted
(`tenantflow_children_resync_found_total`): each one is a lost event, and should not
happen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tenantflow.api.tenant import TenantLimits
from tenantflow.cache import Cache
from tenantflow.controllers.instances.drive import Drive
from tenantflow.controllers.instances.plans import Plans
from tenantflow.durations import format_time
from tenantflow.engine.children import ChildResult, ChildStart, child_name
from tenantflow.engine.journal import StepState
from tenantflow.kube.client import ApiException, KubeApi, message
from tenantflow.lifecycle import instance_state as state
from tenantflow.lifecycle import reset
from tenantflow.observability import metrics
from tenantflow.observability.logging import get_logger
from tenantflow.owners import controlled_by, controller_ref
from tenantflow.shapes import StepEntry
from tenantflow.vocabulary import (
    ACTIVE,
    API_VERSION,
    FINISHED,
    INSTANCE,
    PARENT_ANNOTATION,
    PARENT_STEP_ANNOTATION,
    PARENT_UID_LABEL,
    ObjectKey,
    object_key,
)

log = get_logger("tenantflow.instance")
START_RETRY = 10.0  # seconds before a start the API refused for now (quota, outage) is retried
REFUSED = frozenset({400, 404, 422})  # the child itself is wrong: its step fails
RESYNC_FIRST = 15.0  # seconds a waiting parent first trusts the watch that its children are
CHILD_RESYNC = 300.0  # active; doubled by each re-read that found nothing new, up to this
VERIFIED_PARENTS = 100_000  # parents whose children were read recently, remembered at most


@dataclass(frozen=True)
class Awaited:
    """What a parent's drive learned of the children it awaits."""

    finished: dict[str, ChildResult]  # by the parent's step name
    missing: bool  # one is not there (not started yet, or deleted): the advance starts it

    @property
    def changed(self) -> bool:
        return bool(self.finished) or self.missing


@dataclass(frozen=True)
class Trust:
    """A parent's awaited children, all read (or started) at `read_at` (monotonic): the
    watch is trusted on them for `interval`, a little less (the re-read must read)."""

    read_at: float
    interval: float

    def holds(self, now: float) -> bool:
        return now - self.read_at < 0.9 * self.interval


@dataclass
class Children:
    kube: KubeApi
    plans: Plans  # a start with a source: recorded as a revision first (plans.py)
    # an instance's phase as the watch last showed it (None: not seen, or no phase yet)
    phase_of: Callable[[ObjectKey], str | None] = lambda key: None
    # a drive of an instance requested: a child read here that this process never saw
    # driven (its creation's watch event lost) is driven now, not left to a relist
    nudge: Callable[[ObjectKey], None] = lambda key: None
    clock: Callable[[], float] = time.monotonic
    # parents whose awaited children were all read (or started), none missing: since
    # when, and for how long the watch is trusted on them
    verified: Cache[ObjectKey, Trust] = field(default_factory=lambda: Cache(VERIFIED_PARENTS))

    def resync_in(self, parent: ObjectKey) -> float:
        """Seconds until `parent` should read all its awaited children again."""
        trust = self.verified.get(parent)
        return trust.interval if trust is not None else RESYNC_FIRST

    def _trust(self, parent: ObjectKey, *, renewed: bool) -> None:
        """All of `parent`'s children read just now: trusted for RESYNC_FIRST when they are
        new (`renewed` False), else for twice as long as last time, up to CHILD_RESYNC."""
        last = self.verified.get(parent)
        interval = min(last.interval * 2, CHILD_RESYNC) if renewed and last else RESYNC_FIRST
        self.verified.put(parent, Trust(self.clock(), interval))

    def _names(self, d: Drive, steps: list[StepEntry]) -> dict[str, str]:
        """The child instance each awaited step of `steps` (a journal) runs as, by step."""
        epoch = reset.epoch(d.status)
        return {step: child_name(d.view.name, step, epoch) for step in state.awaited_steps(steps)}

    async def awaited(self, d: Drive) -> Awaited | None:
        """The awaited children's state; None when the instance awaits none. A child the
        watch shows still active costs nothing; the others (finished, or not seen yet)
        are read one by one, so a fan-out of N children costs O(N) reads as they finish,
        not a list of all of them at each one. Once per CHILD_RESYNC, all are read."""
        names = self._names(d, d.status.get("steps") or [])
        if not names:
            self.verified.discard(d.key)
            return None
        trust = self.verified.get(d.key)
        trusted = trust is not None and trust.holds(self.clock())
        finished: dict[str, ChildResult] = {}
        missing, surprises = False, 0
        for step, name in names.items():
            key = object_key(d.view.namespace, name)
            seen = self.phase_of(key)
            active = seen in ACTIVE
            if active and trusted:
                continue
            body = await self.kube.get(API_VERSION, INSTANCE, name, d.view.namespace)
            result = None
            if body is None or not controlled_by(body, d.view.uid):
                missing = True  # the advance asks for it again (a start finds a squatter)
            elif (result := ChildResult.of_status(body.get("status") or {})) is not None:
                finished[step] = result
            elif seen is None:
                self.nudge(key)  # there, never seen driven here: drive it
            surprises += active and (body is None or result is not None)
        if surprises:
            metrics.CHILDREN_RESYNCED.labels(tenant=d.view.tenant or "").inc(surprises)
            log.warning(
                "children found ended that the watch showed active",
                instance=d.key,
                children=surprises,
            )
        if missing:
            self.verified.discard(d.key)
        elif not trusted:  # all read just now (trust is renewed by reads, never extended)
            self._trust(d.key, renewed=not finished and trust is not None)
        return Awaited(finished, missing)

    async def start(
        self, d: Drive, starts: tuple[ChildStart, ...], limits: TenantLimits | None = None
    ) -> None:
        """Create the children the advance waits on (those that exist are left alone). A
        child the API refuses as invalid fails its step; a refusal for now (quota, an
        outage) is retried after START_RETRY. A start with a source (a plan written at
        runtime) is recorded as a revision first, and the child pinned to it; `limits`:
        the tenant's (its budget of such revisions)."""
        names = self._names(d, (d.update or {}).get("steps") or [])
        started: list[str] = []
        for start in starts:
            name = names.get(start.step)
            if name is None:  # not a step the journal awaits: nothing to start
                continue
            if start.source is not None:
                pinned = await self._pin(d, start, name, limits or TenantLimits())
                if pinned is None:
                    continue
                start = pinned
            if await self._create(d, start, name):
                started.append(name)
        if started and len(started) == len(starts):  # all new: the watch may be trusted
            self._trust(d.key, renewed=False)
        if started:
            metrics.CHILDREN_STARTED.labels(tenant=d.view.tenant or "").inc(len(started))
            if d.event is None:
                d.event = ("Normal", "ChildrenStarted", ", ".join(started)[:1000])
        if set(names) - {s.step for s in starts}:
            # awaited, no start: the engine left plans for the next advance (the sources
            # one answer carries are capped); that advance is due now
            d.later(0.0)

    async def _create(self, d: Drive, start: ChildStart, name: str) -> bool:
        """Create one child; True when it is new."""
        try:
            await self.kube.create(self._manifest(d, start, name))
            return True
        except ApiException as exc:
            if exc.status == 409:
                await self._check_owner(d, start, name, exc)
            elif exc.status in REFUSED:
                self._fail_step(d, start.step, "ChildInvalid", message(exc)[:1024])
            else:
                self._not_started(d, name, exc)
        return False

    async def _pin(
        self, d: Drive, start: ChildStart, name: str, limits: TenantLimits
    ) -> ChildStart | None:
        """A start with a source, recorded: the start of the child pinned to that
        revision (journaled on the step, so no later start writes it again); None when
        the step failed, or the start is to be tried again later."""
        assert start.source is not None
        try:
            pinned = await self.plans.record(
                d.view.namespace,
                start.definition,
                start.source,
                writer=d.view.name,
                per_hour=limits.runtime_revisions_per_hour,
                now=d.now,
            )
        except ApiException as exc:
            self._not_started(d, name, exc)
            return None
        if pinned.revision is None:
            self._fail_step(d, start.step, pinned.reason, pinned.message)
            return None
        for entry in (d.update or {}).get("steps") or []:
            if entry.get("name") == start.step and entry.get("state") == StepState.WAITING:
                entry["revision"] = pinned.revision
        return replace(start, revision=pinned.revision, source=None)

    def _not_started(self, d: Drive, name: str, exc: ApiException) -> None:
        """A start refused for now (quota, an outage, a conflict with nothing there): the
        parent is driven again after START_RETRY, finds the child missing, starts it."""
        self.verified.discard(d.key)
        log.warning("child not started", instance=d.key, child=name, status=exc.status)
        d.later(START_RETRY)
        if d.event is None:
            d.event = ("Warning", "ChildNotStarted", f"{name}: {message(exc)[:1024]}")

    def _manifest(self, d: Drive, start: ChildStart, name: str) -> dict[str, Any]:
        ref: dict[str, Any] = {"name": start.definition}
        if start.revision is not None:
            ref["revision"] = start.revision
        return {
            "apiVersion": API_VERSION,
            "kind": INSTANCE,
            "metadata": {
                "name": name,
                "namespace": d.view.namespace,
                "labels": {PARENT_UID_LABEL: d.view.uid},
                "annotations": {
                    PARENT_ANNOTATION: d.view.name,
                    PARENT_STEP_ANNOTATION: start.step,
                },
                "ownerReferences": [controller_ref(INSTANCE, d.view.name, d.view.uid)],
            },
            "spec": {"workflowRef": ref, "params": start.params},
        }

    async def _check_owner(self, d: Drive, start: ChildStart, name: str, exc: ApiException) -> None:
        """A child of that name exists: ours (a start repeated), or someone else's object,
        which the parent must not take for its child. If none is there after all (a 409
        with no object: a proxy's or an admission webhook's), the start is tried again."""
        body = await self.kube.get(API_VERSION, INSTANCE, name, d.view.namespace)
        if body is None:
            self._not_started(d, name, exc)
        elif not controlled_by(body, d.view.uid):
            self._fail_step(
                d,
                start.step,
                "ChildNameTaken",
                f"an instance named {name} exists and is not this instance's child; delete "
                "or rename it, then retry this instance (tenantflow retry)",
            )

    def _fail_step(self, d: Drive, step: str, reason: str, message: str) -> None:
        """Fail a child step in the journal being written; the next advance raises its
        StepError in the parent's code."""
        for entry in (d.update or {}).get("steps") or []:
            if entry.get("name") == step and entry.get("state") == StepState.WAITING:
                entry["state"] = str(StepState.ERRORED)
                entry["error"] = {"name": reason, "message": message[:4096]}
                entry["finishedAt"] = format_time(d.now)
                d.again = True
        d.event = ("Warning", reason, f"step {step!r}: {message}"[:1024])

    async def close(self, namespace: str, uid: str) -> None:
        """Terminate (spec.terminate) a parent's active children: it finished while it
        still awaited them, or a reset started its run again (new children)."""
        items = await self.kube.list(
            API_VERSION, INSTANCE, namespace=namespace, label_selector=f"{PARENT_UID_LABEL}={uid}"
        )
        for body in items:
            phase = (body.get("status") or {}).get("phase")
            if phase in FINISHED or (body.get("spec") or {}).get("terminate"):
                continue
            try:
                await self.kube.patch(
                    API_VERSION,
                    INSTANCE,
                    body["metadata"]["name"],
                    namespace,
                    {"spec": {"terminate": True}},
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
