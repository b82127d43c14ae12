"""The one place a drive's decisions reach the API server, through the runtime's one
persist (controllers/persist.py: fenced, guarded by the resourceVersion read at the start
of the drive, re-committed on a 409).

A concurrent change makes the write fail (409) and the instance is driven again from the
fresh status — unless the journal is unchanged (an event was appended to spec, a label
changed), in which case an advance's result is committed again on the fresh object: it
still extends that journal, so its steps need not run again. Entries are never lost or
reordered. A write that did not happen (fenced, conflicting, gone) requests the instance
again: the queue's ownership gate decides whether it runs here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenantflow import conditions
from tenantflow.controllers.instances.drive import Drive, Event
from tenantflow.controllers.persist import Body, Persist
from tenantflow.controllers.work_queue import WorkQueue
from tenantflow.durations import parse_time
from tenantflow.kube.client import ApiException
from tenantflow.kube.client import message as client_message
from tenantflow.kube.events import EventRecorder
from tenantflow.lifecycle import instance_state as state
from tenantflow.lifecycle.attributes import label_patch
from tenantflow.observability import metrics
from tenantflow.observability.logging import get_logger
from tenantflow.vocabulary import FINISHED, INSTANCE, ObjectKey, Phase, object_key, tenant_of

log = get_logger("tenantflow.instance")

FRESH_BODIES = 2000  # bodies kept to spare their next drive a GET, at most
REMEMBER_WITHIN = dt.timedelta(seconds=60)  # ...when that drive is due this soon


@dataclass
class StatusWriter:
    events: EventRecorder
    queue: WorkQueue[ObjectKey]
    persister: Persist
    # bodies our own writes left, kept for the next drive of their instance (remember())
    fresh: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    # the resourceVersion of each write whose watch event has not come back yet
    unechoed: dict[ObjectKey, str] = field(default_factory=dict)

    async def persist(self, d: Drive) -> None:
        """Write what `d` decided (if anything), then put its instance back in the queue
        when it asked to run again."""
        if d.update is not None:
            d.written = await (
                self._commit_or_refuse(d)
                if d.extends_journal
                else self.patch(d.body, d.update, d.event)
            )
            if d.written is None:  # the journal moved, the shard was lost, the object is gone
                self.queue.request(d.key)
                return
            if d.written is not None:
                self._count_finished(d)
                if d.attributes:
                    d.written = await self._relabel(d.written, d.attributes)
        if d.again and (d.update is None or d.written is not None):
            self.queue.request(d.key)
        elif d.wake_at is not None:
            self.queue.request_after(d.key, d.wake_at)

    async def _relabel(
        self, written: dict[str, Any], attributes: dict[str, str | None]
    ) -> dict[str, Any]:
        """The search attributes an advance's code set, as labels of the instance whose
        status now records that advance: one metadata merge patch of those that differ from
        its labels (none when all are as set), so only declared attributes are ever
        written and a label its creator set otherwise is never touched. A refusal is
        logged and counted, never retried here: the next advance sets them again."""
        meta = written["metadata"]
        patch = label_patch(meta.get("labels") or {}, attributes)
        if not patch:
            return written
        key = object_key(meta["namespace"], meta["name"])
        try:
            relabelled = await self.persister.labels(INSTANCE, written, patch)
        except ApiException as exc:
            tenant = tenant_of(meta["namespace"])
            metrics.ATTRIBUTES_IGNORED.labels(tenant=tenant, reason="refused").inc(len(patch))
            log.warning("search attributes not applied", instance=key, error=client_message(exc))
            return written
        if relabelled is None:
            return written
        # (the status write stays the echo awaited: this patch's own event finds the
        # instance settled, or asks for the drive it asked for already)
        self.fresh.pop(key, None)
        self.remember(key, relabelled)
        return relabelled

    async def _commit_or_refuse(self, d: Drive) -> dict[str, Any] | None:
        """Commit an advance's result; one the API server refuses as invalid (422: a
        journal the CRD's schema does not allow, which only tenant code rewriting its
        sandbox's answer can produce) ends the instance Errored with its last good
        journal, instead of being advanced and refused again and again."""
        try:
            return await self._commit(d)
        except ApiException as exc:
            if exc.status != 422:
                raise
            refusal = client_message(exc)
        message = (
            "the API server refused the journal the sandbox returned (did workflow code "
            f"rewrite it?): {refusal}"
        )[:4096]
        error = {"name": "SandboxBadOutput", "message": message}
        d.update = state.finished(Phase.ERRORED, d.now, error=error)
        d.event = ("Warning", "SandboxBadOutput", message)
        d.extends_journal, d.again, d.wake_at = False, False, None
        return await self.patch(d.body, d.update, d.event)

    async def _commit(self, d: Drive) -> dict[str, Any] | None:
        """On a 409 caused by a change that left the journal as we read it, commit again
        on the fresh object: the result still extends that journal."""
        update = d.update or {}

        def compose(body: Body) -> Body | None:
            current = body.get("status") or {}
            if body is not d.body and any(
                current.get(k) != d.view.status.get(k) for k in ("steps", "eventsSeen")
            ):
                return None
            return self._with_health(body, update)

        return await self._write(d.body, compose, d.event)

    async def patch(
        self, body: dict[str, Any], status: dict[str, Any], event: Event | None
    ) -> dict[str, Any] | None:
        """A status merge-patch of what a drive decided on `body` (not re-committed: a
        decision other than an advance's result is taken again from the fresh object);
        None when it was not written."""
        return await self._write(
            body, lambda b: self._with_health(b, status) if b is body else None, event
        )

    async def _write(
        self,
        body: dict[str, Any],
        compose: Callable[[Body], Body | None],
        event: Event | None,
    ) -> dict[str, Any] | None:
        out = await self.persister.status(INSTANCE, body, compose)
        if out is None:
            return None
        meta = out["metadata"]
        key = object_key(meta["namespace"], meta["name"])
        self.remember(key, out)
        self.unechoed[key] = meta["resourceVersion"]
        if event:
            await self.events.post(body, *event)
        return out

    @staticmethod
    def _with_health(body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """`status` with the conditions its phase and error imply (sent only when they
        change) and the generation it was decided on."""
        meta, before = body["metadata"], body.get("status") or {}
        health = state.health(
            status.get("phase") or before.get("phase"),
            status.get("error") if "error" in status else before.get("error"),
        )
        merged = conditions.only_abnormal(
            conditions.merge(
                status.get("conditions") or before.get("conditions"),
                health,
                generation=meta.get("generation"),
            ),
            state.QUIET_CONDITIONS,
        )
        status = {**status, "observedGeneration": meta.get("generation")}
        status.pop("conditions", None)
        if merged != before.get("conditions"):  # most writes of a drive leave them as they are
            status["conditions"] = merged
        return status

    def remember(self, key: ObjectKey, written: dict[str, Any]) -> None:
        """Keep the object as our status write left it when its next drive is soon (a short
        sleep, a retry, a continuation): that drive then needs no GET. Safe because only the
        operator writes status, so this is the newest journal; a spec change since (an
        event, suspend, terminate) fails the next write with 409 and the commit re-reads;
        and a watch event with another resourceVersion drops it (forget_if_changed)."""
        st = written.get("status") or {}
        wake = st.get("nextWakeAt")
        soon = st.get("phase") == Phase.RUNNING or (
            wake is not None and parse_time(wake) - dt.datetime.now(dt.UTC) < REMEMBER_WITHIN
        )
        if soon and len(self.fresh) < FRESH_BODIES:
            self.fresh[key] = written

    def is_echo(self, key: ObjectKey, body: dict[str, Any]) -> bool:
        """True for the watch event of our own last write of `key` (once: any event of the
        key ends the wait for it, so the table holds only writes in flight)."""
        written = self.unechoed.pop(key, None)
        return written is not None and written == body["metadata"].get("resourceVersion")

    def forget_if_changed(self, key: ObjectKey, body: dict[str, Any] | None) -> None:
        """A watched state other than the one we hold (or a deletion): the next drive
        reads the object afresh."""
        held = self.fresh.get(key)
        if held and (
            body is None
            or held["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion")
        ):
            del self.fresh[key]

    def _count_finished(self, d: Drive) -> None:
        phase = (d.update or {}).get("phase")
        if phase in FINISHED and d.view.phase not in FINISHED and d.view.tenant:
            metrics.INSTANCE_FINISHED.labels(tenant=d.view.tenant, phase=phase).inc()
