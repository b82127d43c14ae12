"""A Tenant's status from what was observed in its namespace (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from tenantflow.conditions import ConditionUpdate, health
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
        ConditionUpdate(
            ConditionType.SANDBOX_READY,
            box_ok,
            "Ready" if box_ok else "Starting",
            box_says,
        ),
        _secrets(o),
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
    ready = ns_ok and pvc_ok and box_ok
    # Secrets come from the platform, often later (a GitOps wave after the Tenant's): a
    # missing one is said on its own condition and never holds Ready back, or a sync
    # waiting for the Tenant to be healthy before creating them would wait for ever
    not_ready = [c.type for c in conds if not c.status and c.type != ConditionType.SECRETS_READY]
    top = health(
        ready,
        "Ready" if ready else "Provisioning",
        "all tenant resources are ready" if ready else f"waiting for {', '.join(not_ready)}",
        reconciling=not ready,
    )
    return ("Ready" if ready else "Provisioning"), [*top, *conds]


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
