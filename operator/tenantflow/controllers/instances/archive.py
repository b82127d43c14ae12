"""A finished instance leaves the control plane for its tenant's history (issue 34):
archived first, deleted after.

The CR is deleted only once the tenant's runner answered that the record is stored (its
store syncs each write), so a crash between the two archives it again (an archive is
idempotent by uid) and never loses it. A store that is full, unreachable or missing
keeps the CR where it is: an `Archived=False` condition naming the cause, a Warning
Event, `tenantflow_archives_total{result="failed"}`, and a retry after ARCHIVE_RETRY.

The instances of one tenant due together go in one request (up to MAX_ARCHIVE_BATCH,
gathered for BATCH_WINDOW): one signed hop and one sync of the store for all of them,
each record still stored or refused on its own (a refused one keeps only its own CR,
`Archived=False` with reason ArchiveRefused and the runner's words).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from tenantflow.controllers.instances.drive import Drive
from tenantflow.controllers.instances.failures import SANDBOX_WAIT_RECHECK
from tenantflow.observability import metrics
from tenantflow.observability.logging import get_logger
from tenantflow.sandbox.client.transport import Endpoint, SandboxUnavailable
from tenantflow.sandbox.protocol.payload import BAD_REQUEST, MAX_ARCHIVE_BATCH
from tenantflow.tenancy.idle import WAITING_FOR_SANDBOX
from tenantflow.vocabulary import GROUP, ConditionType

log = get_logger("tenantflow.instance")
ARCHIVE_RETRY = 60.0  # seconds before an archive that failed is tried again
BATCH_WINDOW = 0.2  # seconds an archive waits for others of its tenant to go with it
# labels of ours or of the platform's tooling: not the tenant's search attributes
NOT_ATTRIBUTES = (f"{GROUP}/", "app.kubernetes.io/", "kubernetes.io/")


class Runners(Protocol):
    async def endpoint(self, tenant: str) -> Endpoint: ...


class HistoryTransport(Protocol):
    async def history(self, ep: Endpoint, request: dict[str, Any]) -> dict[str, Any]: ...


@dataclass
class _Batch:
    """The records of one tenant waiting to go in one request, each with its drive's
    future (None: stored; else the error)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


@dataclass
class Archiver:
    sandboxes: Runners
    transport: HistoryTransport
    window: float = BATCH_WINDOW
    _batches: dict[str, _Batch] = field(default_factory=dict)
    _sending: set[asyncio.Task[None]] = field(default_factory=set)

    async def keep(self, d: Drive) -> bool:
        """Archive `d`'s instance; False (and why, on `d`) when it is not stored yet."""
        tenant = d.view.tenant or ""
        try:
            await self._archive(tenant, record(d))
        except SandboxUnavailable as exc:
            # an idle tenant's sandbox is being started for it: a wait, not a failure
            starting = exc.reason == WAITING_FOR_SANDBOX
            if not starting:
                metrics.ARCHIVES.labels(tenant=tenant, result="failed").inc()
                log.warning("archive failed", instance=d.key, reason=exc.reason, error=str(exc))
            d.condition(
                ConditionType.ARCHIVED,
                False,
                exc.reason,
                f"not archived into the tenant's history yet, so not deleted: {exc}"[:1024],
                warn=not starting,
            )
            d.later(SANDBOX_WAIT_RECHECK if starting else ARCHIVE_RETRY)
            return False
        metrics.ARCHIVES.labels(tenant=tenant, result="archived").inc()
        return True

    async def _archive(self, tenant: str, item: dict[str, Any]) -> None:
        """Add `item` to its tenant's batch and wait for the batch's answer: the first one
        in starts the window, a full batch goes at once."""
        batch = self._batches.get(tenant)
        if batch is None:
            batch = self._batches[tenant] = _Batch()
            self._spawn(self._send_later(tenant, batch))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batch.records.append(item)
        batch.waiters.append(done)
        if len(batch.records) >= MAX_ARCHIVE_BATCH and self._take(tenant, batch):
            self._spawn(self._send(tenant, batch))  # the next record starts a new batch
        await done

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _take(self, tenant: str, batch: _Batch) -> bool:
        """Close `batch` to new records; False if it was closed already (sent when full,
        before its window ended)."""
        if self._batches.get(tenant) is not batch:
            return False
        del self._batches[tenant]
        return True

    async def _send_later(self, tenant: str, batch: _Batch) -> None:
        await asyncio.sleep(self.window)
        if self._take(tenant, batch):
            await self._send(tenant, batch)

    async def _send(self, tenant: str, batch: _Batch) -> None:
        """Send `batch` (closed: `_take`) and settle each waiter with its record's own
        answer."""
        try:
            endpoint = await self.sandboxes.endpoint(tenant)
            errors = await self._store(tenant, endpoint, batch.records)
        except Exception as exc:  # each drive handles it as its own archive's failure
            errors = {item["uid"]: exc for item in batch.records}
        for item, waiter in zip(batch.records, batch.waiters, strict=True):
            if waiter.done():
                continue
            error = errors.get(item["uid"])
            if error is None:  # deleted only once the runner said it is kept
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    async def _store(
        self, tenant: str, endpoint: Endpoint, records: list[dict[str, Any]]
    ) -> dict[str, Exception]:
        """Archive `records` in one request; the error of each record not stored, by uid.
        A runner older than batching (the sandbox not yet on the operator's image during an
        upgrade) refuses the batch's shape as a bad request: it gets them one by one, in
        the form it knows, instead of keeping every archive waiting until it is upgraded."""
        try:
            answer = await self.transport.history(endpoint, {"op": "archive", "instances": records})
        except SandboxUnavailable as exc:
            if exc.reason != BAD_REQUEST:
                raise
            log.info("archiving one by one", tenant=tenant, error=str(exc)[:200])
            return await self._store_each(endpoint, records)
        stored = set(_strings(answer.get("archived")))
        refused = {
            str(r.get("uid")): str(r.get("error"))[:512]
            for r in _list(answer.get("refused"))
            if isinstance(r, dict)
        }
        return {
            item["uid"]: SandboxUnavailable(
                "ArchiveRefused",
                "the tenant's runner: "
                + refused.get(item["uid"], "its answer did not list the record as stored"),
            )
            for item in records
            if item["uid"] not in stored
        }

    async def _store_each(
        self, endpoint: Endpoint, records: list[dict[str, Any]]
    ) -> dict[str, Exception]:
        errors: dict[str, Exception] = {}
        for item in records:
            try:
                answer = await self.transport.history(endpoint, {"op": "archive", "instance": item})
            except SandboxUnavailable as exc:
                errors[item["uid"]] = exc
                continue
            if answer.get("archived") is not True:
                errors[item["uid"]] = SandboxUnavailable(
                    "ArchiveRefused", "the tenant's runner did not say the record is stored"
                )
        return errors


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [v for v in _list(value) if isinstance(v, str)]


def record(d: Drive) -> dict[str, Any]:
    """The archive record of a finished instance: what `tenantflow get` showed of it."""
    meta, st = d.body["metadata"], d.view.status
    labels = meta.get("labels") or {}
    return {
        "uid": d.view.uid,
        "name": d.view.name,
        "definition": d.view.workflow,
        "phase": st.get("phase") or "",
        "createdAt": d.view.created,
        "finishedAt": st.get("finishedAt") or d.view.created,
        "attributes": {k: v for k, v in labels.items() if not k.startswith(NOT_ATTRIBUTES)},
        "record": {
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "creationTimestamp", "labels", "annotations")
                if k in meta
            },
            "spec": d.body.get("spec") or {},
            "status": st,
        },
    }
