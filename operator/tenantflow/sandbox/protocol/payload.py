"""The body of an advance request: everything the runner needs, nothing it may not see."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from tenantflow.engine.children import ChildResult
from tenantflow.engine.options import EngineLimits, StepDefaults
from tenantflow.engine.state import InboxEvent
from tenantflow.engine.wire import (
    child_results_to_wire,
    defaults_to_wire,
    inbox_to_wire,
    limits_from_wire,
    limits_to_wire,
)
from tenantflow.lifecycle.source import Code
from tenantflow.sandbox.protocol import frames
from tenantflow.shapes import StepEntry
from tenantflow.vocabulary import DEFAULT_ENTRYPOINT

GRACE_SECONDS = 2  # past the budget, before the zygote kills the advance's process group
QUERY = "query"  # a query's payload key: {name, args} (engine/queries.py)
# revision.searchAttributes: the attribute names the revision declares (a list)
ATTRIBUTES = "searchAttributes"
# the runner's refusal while its pod can still reach the API server (the NetworkPolicy not
# yet enforced: sandbox/pod/isolation.py); the operator waits for the sandbox and retries
NOT_ISOLATED = "SandboxNotIsolated"
# the runner's refusal of a request's shape; the operator's archives take it as a runner
# older than the batched form (controllers/instances/archive.py)
BAD_REQUEST = "BadRequest"
ADVANCE_OP = "advance"  # the zygote's request for an advance (advance_request)
MAX_BUDGET_SECONDS = 7 * 24 * 3600.0  # the zygote refuses a longer one as malformed
QUERY_SECONDS = 10.0  # a query's budget: a replay and one handler call, no step runs
# instances one history request archives (each status is under etcd's 1.5 MiB, the
# request under frames.MAX_REQUEST)
MAX_ARCHIVE_BATCH = 16


def deadline_seconds(payload: dict[str, Any]) -> float:
    """Wall-clock (and CPU) budget of one advance: the longest step plus the batch, plus
    grace (a query: QUERY_SECONDS plus grace). The zygote kills at it; the runner and the
    operator wait a little longer."""
    if QUERY in payload:
        return QUERY_SECONDS + GRACE_SECONDS
    limits = limits_from_wire(payload["limits"])
    return limits.max_step_timeout + limits.batch_seconds + GRACE_SECONDS


def advance_request(payload: dict[str, Any]) -> bytes:
    """An advance as the runner sends it to the zygote: a head the zygote reads (`op`, and
    `budget`: the seconds after which it kills the child), then the payload in a frame of
    its own, which only the child that runs it reads and decodes (once, not once in the
    zygote and again in the child)."""
    head = {"op": ADVANCE_OP, "budget": deadline_seconds(payload)}
    return frames.encode(head) + frames.encode(payload)


def advance_payload(
    *,
    source: str | Code,
    instance_id: str,
    started_at: str,
    instance_uid: str | None = None,
    entrypoint: str = DEFAULT_ENTRYPOINT,
    name: str = "workflow",
    params: Any = None,
    journal: list[StepEntry] | None = None,
    inbox: list[InboxEvent] | None = None,
    defaults: StepDefaults | None = None,
    limits: EngineLimits | None = None,
    max_bytes: int | None = None,
    ops_per_second: float | None = None,
    lost_attempts: dict[str, Any] | None = None,
    epoch: int = 0,
    children: dict[str, ChildResult] | None = None,
    offloaded: dict[str, Any] | None = None,
    journal_window: int = 0,
    search_attributes: Collection[str] = (),
) -> dict[str, Any]:
    """`source`: one module's text, or a revision's Code (several files). `epoch`: how
    many times the instance was reset (its steps' stored results are kept per epoch, its
    children named per epoch). `children`: finished children of `step.child` calls.
    `search_attributes`: the names the revision declares, the only ones its code may set
    (`step.set_attributes`; the runner keeps no other of the answer's)."""
    code = source if isinstance(source, Code) else Code.single(source)
    return {
        "revision": {
            "sha256": code.sha256,
            "files": dict(code.files),
            "main": code.main,
            "entrypoint": entrypoint,
            "name": name,
            **({ATTRIBUTES: sorted(search_attributes)} if search_attributes else {}),
        },
        "instance": {
            "id": instance_id,
            **({"uid": instance_uid} if instance_uid else {}),  # whose log lines the runner keeps
            "params": params,
            "startedAt": started_at,
            **({"epoch": epoch} if epoch else {}),
        },
        "journal": journal or [],
        # the oldest entries the tenant's history keeps (status.offloadedSteps), and how
        # many the status keeps (sandbox/pod/journal_window.py; 0: all of them)
        **({"offloaded": offloaded} if offloaded else {}),
        **({"journalWindow": journal_window} if journal_window else {}),
        "lostAttempts": lost_attempts or {},
        "inbox": inbox_to_wire(inbox or []),
        **({"children": child_results_to_wire(children)} if children else {}),
        "defaults": defaults_to_wire(defaults or StepDefaults()),
        "limits": limits_to_wire(limits or EngineLimits()),
        "storage": {"maxBytes": max_bytes, "opsPerSecond": ops_per_second},
    }
