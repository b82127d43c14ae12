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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenantflow.controllers.instances.drive import Drive
from tenantflow.durations import format_time
from tenantflow.engine.children import ChildResult, ChildStart, child_name
from tenantflow.engine.journal import StepState
from tenantflow.kube.client import ApiException, KubeApi, message
from tenantflow.lifecycle import instance_state as state
from tenantflow.lifecycle import reset
from tenantflow.observability import metrics
from tenantflow.observability.logging import get_logger
from tenantflow.owners import controlled_by, controller_ref
from tenantflow.vocabulary import ACTIVE, API_VERSION, FINISHED, GROUP, INSTANCE

log = get_logger("tenantflow.instance")
PARENT_UID_LABEL = f"{GROUP}/parent-uid"
PARENT_ANNOTATION = f"{GROUP}/parent"
PARENT_STEP_ANNOTATION = f"{GROUP}/parent-step"
START_RETRY = 10.0  # seconds before a start the API refused for now (quota, outage) is retried
REFUSED = frozenset({400, 404, 422})  # the child itself is wrong: its step fails


@dataclass(frozen=True)
class Awaited:
    """What a parent's drive learned of the children it awaits."""

    finished: dict[str, ChildResult]  # by the parent's step name
    missing: bool  # one is not there (not started yet, or deleted): the advance starts it

    @property
    def changed(self) -> bool:
        return bool(self.finished) or self.missing


@dataclass
class Children:
    kube: KubeApi
    # an instance's phase as the watch last showed it (None: not seen, or no phase yet)
    phase_of: Callable[[str], str | None] = lambda key: None

    def _names(self, d: Drive, steps: list[dict[str, Any]]) -> dict[str, str]:
        """The child instance each awaited step of `steps` (a journal) runs as, by step."""
        epoch = reset.epoch(d.status)
        return {step: child_name(d.view.name, step, epoch) for step in state.awaited_steps(steps)}

    async def awaited(self, d: Drive) -> Awaited | None:
        """The awaited children's state; None when the instance awaits none. A child the
        watch shows still active costs nothing; the others (finished, or not seen yet)
        are read one by one, so a fan-out of N children costs O(N) reads as they finish,
        not a list of all of them at each one."""
        names = self._names(d, d.status.get("steps") or [])
        if not names:
            return None
        finished: dict[str, ChildResult] = {}
        missing = False
        for step, name in names.items():
            if self.phase_of(f"{d.view.namespace}/{name}") in ACTIVE:
                continue
            body = await self.kube.get(API_VERSION, INSTANCE, name, d.view.namespace)
            if body is None or not controlled_by(body, d.view.uid):
                missing = True  # the advance asks for it again (a start finds a squatter)
                continue
            result = ChildResult.of_status(body.get("status") or {})
            if result is not None:
                finished[step] = result
        return Awaited(finished, missing)

    async def start(self, d: Drive, starts: tuple[ChildStart, ...]) -> None:
        """Create the children the advance waits on (those that exist are left alone). A
        child the API refuses as invalid fails its step; a refusal for now (quota, an
        outage) is retried after START_RETRY."""
        names = self._names(d, (d.update or {}).get("steps") or [])
        started: list[str] = []
        for start in starts:
            name = names.get(start.step)
            if name is None:  # not a step the journal awaits: nothing to start
                continue
            try:
                await self.kube.create(self._manifest(d, start, name))
                started.append(name)
            except ApiException as exc:
                if exc.status == 409:
                    await self._check_owner(d, start, name)
                elif exc.status in REFUSED:
                    self._fail_step(d, start.step, "ChildInvalid", message(exc)[:1024])
                else:
                    log.warning("child not started", instance=d.key, child=name, status=exc.status)
                    d.later(START_RETRY)
                    if d.event is None:
                        d.event = ("Warning", "ChildNotStarted", f"{name}: {message(exc)[:1024]}")
        if started:
            metrics.CHILDREN_STARTED.labels(tenant=d.view.tenant or "").inc(len(started))
            if d.event is None:
                d.event = ("Normal", "ChildrenStarted", ", ".join(started)[:1000])

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

    async def _check_owner(self, d: Drive, start: ChildStart, name: str) -> None:
        """A child of that name exists: ours (a start repeated), or someone else's object,
        which the parent must not take for its child."""
        body = await self.kube.get(API_VERSION, INSTANCE, name, d.view.namespace)
        if body is not None and not controlled_by(body, d.view.uid):
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
