"""One advance of an instance: its inbox within the tenant's event budget, the payload,
the sandbox call (fair across tenants), and the result folded into the drive's update."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenantflow import conditions
from tenantflow.api.tenant import TenantLimits
from tenantflow.controllers.instances.drive import Drive
from tenantflow.controllers.instances.failures import SandboxFailures
from tenantflow.controllers.sandboxes import Sandboxes
from tenantflow.durations import parse_time
from tenantflow.engine import compensation
from tenantflow.engine.children import ChildResult
from tenantflow.engine.options import EngineLimits, StepDefaults
from tenantflow.engine.outcome import Waiting
from tenantflow.engine.wire import outcome_from_wire
from tenantflow.lifecycle import attributes, reset
from tenantflow.lifecycle import instance_state as state
from tenantflow.lifecycle.source import Code
from tenantflow.observability import metrics
from tenantflow.observability.logging import get_logger
from tenantflow.quantity import parse_quantity
from tenantflow.sandbox.client.transport import HttpTransport, SandboxUnavailable, rejected_records
from tenantflow.sandbox.protocol.payload import advance_payload
from tenantflow.shapes import StepEntry
from tenantflow.supervisor.fair_queue import FairDispatcher
from tenantflow.supervisor.token_bucket import TokenBucket, tuned
from tenantflow.supervisor.usage import STORAGE_BYTES
from tenantflow.vocabulary import DEFAULT_ENTRYPOINT, FINISHED, JOURNAL_WINDOW, ConditionType, Phase

log = get_logger("tenantflow.instance")


@dataclass
class Advancer:
    sandboxes: Sandboxes
    transport: HttpTransport
    dispatcher: FairDispatcher
    failures: SandboxFailures
    # (tenant, bytes): the size of the tenant's store, as the sandbox's answer reports it
    storage_measured: Callable[[str, int], None] = lambda tenant, size: None
    event_buckets: dict[str, TokenBucket] = field(default_factory=dict)
    journal_window: int = JOURNAL_WINDOW  # entries the status keeps (0: the whole journal)

    async def advance(
        self,
        d: Drive,
        revision: dict[str, Any],
        limits: TenantLimits,
        children: dict[str, ChildResult] | None = None,
    ) -> None:
        """One sandbox call; `children`: the finished children the instance awaited."""
        tenant = d.view.tenant
        assert tenant is not None  # only tenant namespaces get this far
        all_events, seen_before = d.view.events, d.status.get("eventsSeen") or []
        deliver = self._event_budget(
            d, tenant, len(all_events) - len(seen_before), float(limits.max_events_per_second)
        )
        inbox, seen = state.inbox(all_events[: len(seen_before) + deliver], seen_before, d.now)
        payload = _payload(d, revision, limits, inbox, children or {}, self.journal_window)
        try:
            async with self.dispatcher.slot(tenant):  # fair across tenants
                started = time.perf_counter()
                endpoint = await self.sandboxes.endpoint(tenant)
                result = await self.transport.advance(endpoint, payload)
                metrics.SANDBOX_INVOKE.labels(tenant=tenant).observe(time.perf_counter() - started)
        except SandboxUnavailable as exc:
            self.failures.failed(d, exc)
            return
        self.failures.succeeded(d.key)
        size = result.get(STORAGE_BYTES)
        if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
            self.storage_measured(tenant, size)
        _observe_steps(tenant, result)
        _observe_rollbacks(tenant, d.status.get("steps") or [], result)
        _log_workflow_lines(tenant, d.key, result)
        d.attributes = _attributes(tenant, d.key, result, revision)
        self._fold(d, result, seen, rejected_records(tenant, d.key, result))

    def _fold(
        self,
        d: Drive,
        result: dict[str, Any],
        seen: list[str],
        rejected: tuple[str, str, str] | None = None,
    ) -> None:
        """`rejected`: the Warning for stored records the sandbox ignored as forged (one
        Event per write: a finish's own Event goes first; the log and metric keep it)."""
        st = d.status
        outcome = outcome_from_wire(result["outcome"])  # the engine's own type, decoded once
        update: dict[str, Any] = {
            **state.pinned(st, "phase"),
            **state.after_advance(
                result,
                outcome,
                seen=seen,
                now=d.now,
                terminating=d.view.terminate and d.view.terminate_rollback,
            ),
        }
        if isinstance(outcome, Waiting) and update["phase"] == Phase.WAITING:
            d.starts = outcome.children
        names = result.get("queries")  # the runner checked them (names, at most 32)
        if isinstance(names, list) and names != (st.get("queries") or []):
            update["queries"] = names or None
        if st.get("lostAttempts"):
            update["lostAttempts"] = state.unapplied_lost_attempts(
                st["lostAttempts"], result.get("journal") or []
            )
        update["conditions"] = conditions.merge(
            st.get("conditions"),
            [
                conditions.ConditionUpdate(ConditionType.SANDBOX_REACHABLE, True, "Reachable"),
                conditions.ConditionUpdate(
                    ConditionType.ADMITTED, True, "Started", "admitted within the tenant's limits"
                ),
            ],
            generation=d.view.generation,
        )
        d.write(update, _finish_event(update, st.get("phase")) or rejected)
        d.extends_journal = True
        if update["phase"] == Phase.RUNNING or (
            update["phase"] == Phase.COMPENSATING and not update.get("nextWakeAt")
        ):
            d.again = True  # the batch budget was spent: continue at once
        elif update["phase"] not in FINISHED and update.get("nextWakeAt"):
            wake = parse_time(update["nextWakeAt"])
            d.wake_at = min(wake, d.wake_at) if d.wake_at else wake

    def _event_budget(self, d: Drive, tenant: str, new: int, rate: float) -> int:
        """How many of `new` events may be delivered now (maxEventsPerSecond)."""
        if new <= 0:
            return 0
        bucket = self.event_buckets[tenant] = tuned(
            self.event_buckets.get(tenant), rate, max(1.0, rate)
        )
        allowed = 0
        while allowed < new and bucket.try_take():
            allowed += 1
        if allowed < new:
            metrics.RATE_LIMITED.labels(tenant=tenant, limit="events").inc()
            d.later(max(bucket.wait_time(), 0.05))
        return allowed


def _payload(
    d: Drive,
    revision: dict[str, Any],
    limits: TenantLimits,
    inbox: list[Any],
    children: dict[str, ChildResult],
    window: int = JOURNAL_WINDOW,
) -> dict[str, Any]:
    data, st = revision["data"], d.status
    return advance_payload(
        source=Code.from_revision(data),
        entrypoint=data.get("entrypoint", DEFAULT_ENTRYPOINT),
        name=d.view.workflow,
        instance_id=d.view.name,
        instance_uid=d.view.uid,
        params=d.view.params,
        started_at=st.get("startedAt") or "",  # (set by the start, before any advance)
        epoch=reset.epoch(st),
        journal=st.get("steps") or [],
        offloaded=st.get("offloadedSteps"),
        journal_window=window,
        inbox=inbox,
        defaults=StepDefaults.from_spec(data.get("defaults")),
        limits=EngineLimits(
            max_steps=limits.max_steps_per_instance,
            max_step_timeout=float(limits.max_step_timeout_seconds),
        ),
        max_bytes=int(parse_quantity(limits.storage)),
        ops_per_second=limits.max_storage_ops_per_second,
        lost_attempts=st.get("lostAttempts"),
        children=children,
        search_attributes=list(data.get("searchAttributes") or {}),
    )


def _attributes(
    tenant: str, key: str, result: dict[str, Any], revision: dict[str, Any]
) -> dict[str, str | None]:
    """The search attributes the advance's code set, as labels may carry them: checked
    again here against the revision's declared names (the runner checked them, but they
    are the worker's), whatever is wrong with them ignored, logged and counted."""
    declared = revision["data"].get("searchAttributes") or {}
    kept, ignored = attributes.from_result(result.get("attributes"), declared)
    if ignored:
        metrics.ATTRIBUTES_IGNORED.labels(tenant=tenant, reason="invalid").inc(len(ignored))
        log.warning("search attributes ignored", tenant=tenant, instance=key, ignored=ignored[:8])
    return kept


def _finish_event(update: dict[str, Any], before: str | None) -> tuple[str, str, str] | None:
    if update["phase"] == Phase.COMPLETE:
        return ("Normal", "Completed", "run() returned")
    if update["phase"] == Phase.COMPENSATING and before != Phase.COMPENSATING:
        trigger = next(
            (e.get("error") or {} for e in update["steps"] if e.get("kind") == "compensate"), {}
        )
        return (
            "Warning",
            "Compensating",
            f"{trigger.get('name')}: {trigger.get('message')}; rolling back completed steps",
        )
    if update["phase"] == Phase.ROLLBACK_FAILED:
        err = update["error"]
        return (
            "Warning",
            "RollbackFailed",
            f"{err.get('step')}: {err['name']}: {err['message']}; fix the cause, then "
            "tenantflow retry resumes the rollbacks",
        )
    if update["phase"] == Phase.TERMINATED:
        return ("Normal", "Terminated", "terminated with rollback: the rollbacks ran")
    if update["phase"] == Phase.ERRORED:
        err = update["error"]
        where = f" in step {err['step']!r}" if err.get("step") else ""
        return ("Warning", err["name"], f"{err['name']}{where}: {err['message']}")
    return None


def _observe_steps(tenant: str, result: dict[str, Any]) -> None:
    """Step metrics from one advance: attempts by outcome, durations of finished steps."""
    executed = result.get("executed", [])
    for _step, outcome in executed:
        metrics.STEP_ATTEMPTS.labels(tenant=tenant, outcome=outcome).inc()
    ran = {name for name, _ in executed}
    for entry in result.get("journal", []):
        if entry["name"] in ran and entry.get("finishedAt") and entry.get("startedAt"):
            seconds = parse_time(entry["finishedAt"]) - parse_time(entry["startedAt"])
            metrics.STEP_DURATION.labels(tenant=tenant).observe(seconds.total_seconds())


def _observe_rollbacks(tenant: str, before: list[StepEntry], result: dict[str, Any]) -> None:
    """Rollbacks started, succeeded and failed (out of retries) in one advance."""
    started, succeeded, failed = compensation.changes(before, result.get("journal") or [])
    if started:
        metrics.ROLLBACKS_STARTED.labels(tenant=tenant).inc(started)
    if succeeded:
        metrics.ROLLBACKS_SUCCEEDED.labels(tenant=tenant).inc(succeeded)
    if failed:
        metrics.ROLLBACKS_FAILED.labels(tenant=tenant).inc(failed)


def _log_workflow_lines(tenant: str, key: str, result: dict[str, Any]) -> None:
    for line in result.get("logs", []):  # tenant-chosen names stay inside `wf_fields`
        log.info(
            "workflow log",
            tenant=tenant,
            instance=key,
            wf_ts=line.get("ts"),
            wf_level=line.get("level"),
            wf_message=line.get("message"),
            wf_fields=line.get("fields"),
        )
