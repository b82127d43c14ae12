"""JSON shapes of an advance's input and result, shared by the operator and the sandbox."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tenantflow.durations import format_time, parse_time
from tenantflow.engine.children import MAX_STARTS, ChildResult, ChildStart
from tenantflow.engine.journal import dump
from tenantflow.engine.options import EngineLimits, RetryPolicy, StepDefaults
from tenantflow.engine.outcome import (
    Advance,
    Compensating,
    Complete,
    Errored,
    Outcome,
    RollbackFailed,
    RolledBack,
    Waiting,
    Yielded,
)
from tenantflow.engine.state import InboxEvent


def outcome_to_wire(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, Complete):
        return {"kind": "Complete", "output": outcome.output, "outputRef": outcome.output_ref}
    if isinstance(outcome, Errored):
        return {"kind": "Errored", "error": outcome.error}
    if isinstance(outcome, Waiting):
        return {
            "kind": "Waiting",
            "wakeAt": format_time(outcome.wake_at) if outcome.wake_at else None,
            "eventTypes": sorted(outcome.event_types),
            "waitingFor": outcome.waiting_for,
            "children": [c.to_wire() for c in outcome.children],
        }
    if isinstance(outcome, Compensating):
        return {
            "kind": "Compensating",
            "wakeAt": format_time(outcome.wake_at) if outcome.wake_at else None,
            "waitingFor": outcome.waiting_for,
        }
    if isinstance(outcome, RolledBack):
        return {"kind": "RolledBack", "error": outcome.error}
    if isinstance(outcome, RollbackFailed):
        return {"kind": "RollbackFailed", "error": outcome.error, "trigger": outcome.trigger}
    assert isinstance(outcome, Yielded)
    return {"kind": "Yielded"}


def outcome_from_wire(data: dict[str, Any]) -> Outcome:
    """The engine's outcome; ValueError when it is not one (it crossed the sandbox)."""
    kind = data["kind"]
    if kind == "Complete":
        return Complete(output=data.get("output"), output_ref=data.get("outputRef"))
    if kind == "Errored":
        return Errored(error=data["error"])
    if kind == "Waiting":
        return Waiting(
            wake_at=parse_time(data["wakeAt"]) if data.get("wakeAt") else None,
            event_types=frozenset(data.get("eventTypes", [])),
            waiting_for=data.get("waitingFor") or {},
            children=children_from_wire(data.get("children") or []),
        )
    if kind == "Yielded":
        return Yielded()
    if kind == "Compensating":
        waiting = data.get("waitingFor")
        return Compensating(
            wake_at=parse_time(data["wakeAt"]) if data.get("wakeAt") else None,
            waiting_for=waiting if isinstance(waiting, dict) else None,
        )
    if kind == "RolledBack":
        return RolledBack(error=data["error"])
    if kind == "RollbackFailed":
        return RollbackFailed(error=data["error"], trigger=data.get("trigger") or {})
    raise ValueError(f"unknown outcome kind {kind!r}")


def children_from_wire(data: Any) -> tuple[ChildStart, ...]:
    if not isinstance(data, list) or len(data) > MAX_STARTS:
        raise ValueError(f"children must be a list of at most {MAX_STARTS} starts")
    starts = tuple(ChildStart.from_wire(c) for c in data)
    if len({c.step for c in starts}) != len(starts):
        raise ValueError("children: one start per step")
    return starts


def child_results_to_wire(results: dict[str, ChildResult]) -> dict[str, Any]:
    return {step: r.to_wire() for step, r in results.items()}


def child_results_from_wire(data: Any) -> dict[str, ChildResult]:
    if not isinstance(data, dict):
        raise ValueError("children must be an object of results by step")
    return {str(step): ChildResult.from_wire(r) for step, r in data.items()}


def advance_to_wire(result: Advance) -> dict[str, Any]:
    return {
        "journal": dump(result.journal),
        "outcome": outcome_to_wire(result.outcome),
        "changed": result.changed,
        "executed": [list(e) for e in result.executed],
        "logs": result.logs,
        **({"rejected": result.rejected} if result.rejected else {}),
        "queries": result.queries,
        **({"attributes": result.attributes} if result.attributes else {}),
    }


def inbox_to_wire(events: list[InboxEvent]) -> list[dict[str, Any]]:
    return [
        {
            "type": e.type,
            "payload": e.payload,
            "timestamp": format_time(e.timestamp) if e.timestamp else None,
        }
        for e in events
    ]


def inbox_from_wire(data: list[dict[str, Any]]) -> list[InboxEvent]:
    return [
        InboxEvent(
            e["type"], e.get("payload"), parse_time(e["timestamp"]) if e.get("timestamp") else None
        )
        for e in data
    ]


def defaults_to_wire(d: StepDefaults) -> dict[str, Any]:
    return {"retries": d.retries.to_wire(), "timeout": d.timeout, "eventTimeout": d.event_timeout}


def defaults_from_wire(data: dict[str, Any]) -> StepDefaults:
    return StepDefaults(
        retries=RetryPolicy.from_wire(data["retries"]),
        timeout=data["timeout"],
        event_timeout=data["eventTimeout"],
    )


def limits_to_wire(limits: EngineLimits) -> dict[str, Any]:
    return asdict(limits)


def limits_from_wire(data: dict[str, Any]) -> EngineLimits:
    return EngineLimits(**data)
