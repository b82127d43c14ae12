"""A Tenant's status from what was observed in its namespace (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from tenantflow.conditions import ConditionUpdate, health
from tenantflow.tenancy.idle import ALWAYS_ON, IDLE, WAITING_FOR_SANDBOX
from tenantflow.vocabulary import ConditionType

IMAGE_NOT_ALLOWED = "ImageNotAllowed"
EGRESS_REFUSED = "EgressRefused"


@dataclass(frozen=True)
class Observed:
    """What the reconciler saw; None = the object does not exist (yet)."""

    conflict: str | None = None  # the namespace exists but is not ours
    namespace_phase: str | None = None
    quota_counted: bool = False  # the quota controller has computed usage (admission works)
    pvc_phase: str | None = None
    sandbox_ready: int = 0
    sandbox_wanted: int = 1
    proxy_ready: bool | None = None  # the egress proxy, when the Tenant has egressHosts
    error: str | None = None  # an API error while applying
    refused: tuple[tuple[str, str], ...] = ()  # (reason, message): spec parts not applied
    missing_secrets: tuple[str, ...] = ()  # Secrets spec.sandbox.secrets names, not there
    namespace: str = ""  # where they are looked for (for the message)
    # the sandbox at zero while idle (IDLE), starting from zero (WAITING_FOR_SANDBOX), up
    # (another idle.decide reason) or never scaled (ALWAYS_ON): tenancy/idle.py
    scale: str = ALWAYS_ON
    waiting: int = 0  # instances waiting for it to start


def conditions(o: Observed) -> tuple[str, list[ConditionUpdate]]:
    """(phase, conditions) following the Tenant contract."""
    if o.conflict:
        c = ConditionUpdate(ConditionType.NAMESPACE_READY, False, "NamespaceConflict", o.conflict)
        return "Degraded", [*health(False, "NamespaceConflict", o.conflict, stalled=True), c]
    ns_ok = o.namespace_phase == "Active" and o.quota_counted
    pvc_ok = o.pvc_phase == "Bound"
    box_ok = o.sandbox_ready >= o.sandbox_wanted and o.proxy_ready is not False
    box_says = f"{o.sandbox_ready}/{o.sandbox_wanted} sandbox replicas ready"
    if o.proxy_ready is not None:
        box_says += ", egress proxy " + ("ready" if o.proxy_ready else "starting")
    # a sandbox at zero, or starting from zero, serves on demand: the Tenant is Ready
    on_demand = o.scale in (IDLE, WAITING_FOR_SANDBOX)
    box_reason = "Ready" if box_ok else "Starting"
    if o.scale == IDLE:
        box_ok, box_reason = False, "ScaledToZero"
        box_says = "scaled to zero while idle (spec.sandbox.idleAfter); started on demand"
    elif o.scale == WAITING_FOR_SANDBOX and not box_ok:
        box_reason = WAITING_FOR_SANDBOX
        box_says = f"starting from zero for {o.waiting} waiting instance(s): {box_says}"
    conds = [
        ConditionUpdate(
            ConditionType.NAMESPACE_READY,
            ns_ok,
            "Active" if ns_ok else "Provisioning",
            "namespace is active" if ns_ok else "waiting for the namespace",
        ),
        ConditionUpdate(
            ConditionType.STORAGE_READY,
            pvc_ok,
            "Bound" if pvc_ok else "Pending",
            "the tenant volume is bound"
            if pvc_ok
            else f"PersistentVolumeClaim is {o.pvc_phase or 'missing'}",
        ),
        ConditionUpdate(ConditionType.SANDBOX_READY, box_ok, box_reason, box_says),
        _secrets(o),
        _scaled(o),
    ]
    if o.refused:
        reason, message = o.refused[0]
        if reason == IMAGE_NOT_ALLOWED:  # the sandbox was left as it is
            conds = [c for c in conds if c.type != ConditionType.SANDBOX_READY]
            conds.append(ConditionUpdate(ConditionType.SANDBOX_READY, False, reason, message))
        return "Degraded", [*health(False, reason, message, stalled=True), *conds]
    if o.error:
        # an API error is retried: under way, not stuck
        return "Degraded", [*health(False, "ApplyFailed", o.error, reconciling=True), *conds]
    ready = ns_ok and pvc_ok and (box_ok or on_demand)
    # Secrets come from the platform, often later (a GitOps wave after the Tenant's): a
    # missing one is said on its own condition and never holds Ready back, or a sync
    # waiting for the Tenant to be healthy before creating them would wait for ever
    optional = {ConditionType.SECRETS_READY, ConditionType.SANDBOX_SCALED_TO_ZERO}
    if on_demand:
        optional.add(ConditionType.SANDBOX_READY)
    not_ready = [c.type for c in conds if not c.status and c.type not in optional]
    says = "all tenant resources are ready"
    if on_demand:
        says += "; its sandbox is scaled to zero while idle and starts on demand"
    top = health(
        ready,
        "Ready" if ready else "Provisioning",
        says if ready else f"waiting for {', '.join(not_ready)}",
        reconciling=not ready,
    )
    return ("Ready" if ready else "Provisioning"), [*top, *conds]


def _scaled(o: Observed) -> ConditionUpdate:
    """SandboxScaledToZero: True (Idle) at zero; False while starting from zero
    (WaitingForSandbox), running (Active, WakeAhead) or never scaled (AlwaysOn)."""
    messages = {
        IDLE: "nothing needed the sandbox for spec.sandbox.idleAfter: it runs no pod until an "
        "instance needs it or a known wake-up is a cold start away (its data stays)",
        WAITING_FOR_SANDBOX: f"starting from zero; {o.waiting} instance(s) wait for it",
        ALWAYS_ON: "never scaled to zero (spec.sandbox.alwaysOn, or no idleAfter)",
    }
    return ConditionUpdate(
        ConditionType.SANDBOX_SCALED_TO_ZERO,
        o.scale == IDLE,
        o.scale,
        messages.get(
            o.scale, "running: used within spec.sandbox.idleAfter, or a known wake-up is near"
        ),
    )


def _secrets(o: Observed) -> ConditionUpdate:
    if not o.missing_secrets:
        return ConditionUpdate(
            ConditionType.SECRETS_READY, True, "Present", "every Secret it names exists"
        )
    names = ", ".join(o.missing_secrets)
    where = o.namespace or "the tenant's namespace"
    return ConditionUpdate(
        ConditionType.SECRETS_READY,
        False,
        "SecretNotFound",
        f"spec.sandbox.secrets names {names}, not in {where} yet: create them there "
        f"(kubectl -n {where} create secret generic NAME ...); until then a step reading "
        "env.secrets[NAME] fails with SecretNotFound",
    )
