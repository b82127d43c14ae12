"""Tenant (cluster-scoped): who owns it, what it may use, how its sandbox runs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tenantflow.api.common import (
    QUANTITY,
    Condition,
    Model,
    ObservedStatus,
    Resource,
    cel,
    checked_strings,
    conditions_field,
    duration_field,
    rule,
)
from tenantflow.engine.secrets import SECRET_NAME
from tenantflow.vocabulary import DNS_LABEL, NAMESPACE_PREFIX, Limits

MAX_SECRETS = 16
EGRESS_HOST = r"^(\*\.)?([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_TENANT_NAME = 56  # the namespace is tenant-<name>, at most 63 characters


class Subject(Model):
    """A user, group or service account that gets the tenant-editor Role."""

    model_config = Model.model_config | {
        "json_schema_extra": cel(
            rule(
                "self.kind != 'ServiceAccount' || has(self.namespace)",
                "owners[].namespace is required when kind is ServiceAccount",
                field_path=".namespace",
            )
        )
    }

    kind: Literal["User", "Group", "ServiceAccount"] = Field(
        description="User, Group or ServiceAccount."
    )
    name: str = Field(min_length=1, max_length=253, description="Subject name.")
    namespace: str | None = Field(
        None, pattern=DNS_LABEL, max_length=63, description="Namespace of a ServiceAccount subject."
    )


class TenantLimits(Model):
    """What one tenant may use, so it can neither starve nor reach another."""

    max_concurrent_instances: int = Field(
        Limits.MAX_CONCURRENT_INSTANCES,
        ge=1,
        le=100_000,
        description="Instances Running, Waiting or Paused at once; the rest wait as Queued.",
    )
    max_instance_starts_per_second: int = Field(
        Limits.MAX_INSTANCE_STARTS_PER_SECOND,
        ge=1,
        le=10_000,
        description="Token bucket rate for instance starts (burst = 2x).",
    )
    max_steps_per_instance: int = Field(
        Limits.MAX_STEPS_PER_INSTANCE,
        ge=1,
        le=100_000,
        description="Steps one instance may record.",
    )
    max_step_timeout_seconds: int = Field(
        Limits.MAX_STEP_TIMEOUT_SECONDS,
        ge=1,
        le=86_400,
        description="Upper bound for any step.do timeout, in seconds.",
    )
    max_events_per_second: int = Field(
        Limits.MAX_EVENTS_PER_SECOND,
        ge=1,
        le=10_000,
        description="Events accepted per second for the tenant.",
    )
    max_storage_ops_per_second: int = Field(
        Limits.MAX_STORAGE_OPS_PER_SECOND,
        ge=1,
        le=100_000,
        description="env.db statements per second for the tenant.",
    )
    storage: str = Field(
        Limits.STORAGE,
        pattern=QUANTITY,
        max_length=32,
        description="PVC size and SQLite size cap, e.g. 1Gi.",
    )
    # No CRD default (None: Limits.MAX_RUNTIME_REVISIONS_PER_HOUR): a defaulted field would
    # appear in every Tenant, and an operator of an earlier release, still running while
    # an upgrade applies these CRDs, refuses a field it does not know (the upgrade test).
    max_runtime_revisions_per_hour: int | None = Field(
        None,
        ge=0,
        le=100_000,
        description="Revisions the tenant's workflows may write at runtime (plans handed "
        "to step.child with a source) per hour, refilled evenly; a source a definition "
        f"holds already costs none. 0: none may be written. Default "
        f"{Limits.MAX_RUNTIME_REVISIONS_PER_HOUR}.",
    )

    @property
    def runtime_revisions_per_hour(self) -> int:
        """maxRuntimeRevisionsPerHour, or its default."""
        given = self.max_runtime_revisions_per_hour
        return Limits.MAX_RUNTIME_REVISIONS_PER_HOUR if given is None else given


class Resources(Model):
    """Container resources of the sandbox, as in a Pod spec."""

    requests: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "100m", "memory": "128Mi"},
        description="Requested cpu/memory.",
        json_schema_extra={"additionalProperties": {"type": "string", "pattern": QUANTITY}},
    )
    limits: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "1", "memory": "512Mi"},
        description="cpu/memory limits.",
        json_schema_extra={"additionalProperties": {"type": "string", "pattern": QUANTITY}},
    )


class EgressHost(Model):
    """A host tenant code may reach through its egress proxy."""

    host: str = Field(
        max_length=253,
        pattern=EGRESS_HOST,
        description="Host name (lower case), or *.domain for any subdomain of domain.",
    )
    ports: list[int] = Field(
        default_factory=lambda: [443],
        min_length=1,
        max_length=16,
        description="TCP ports allowed on that host.",
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": 65535}},
    )
    addresses: list[str] = checked_strings(
        max_items=8,
        max_length=45,
        check="isIP(self)",
        message="egressHosts[].addresses must be IP addresses",
        description="Pin the host to these IP addresses instead of asking DNS (a host "
        "without DNS; no DNS rebinding). Addresses inside the cluster are refused anyway.",
    )


class SandboxSpec(Model):
    """The per-tenant sandbox that runs the tenant's workflow code."""

    replicas: int = Field(1, ge=0, le=20, description="Sandbox runner pods.")
    resources: Resources = Field(
        default_factory=Resources, description="Sandbox container resources."
    )
    image: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="The sandbox image, for tenant code that needs libraries beyond the "
        "standard library (build it on the tenantflow sandbox image); it must match the "
        "operator's allow-list (the chart's sandbox.allowedImages). Default: the operator's.",
    )
    runtime_class_name: str | None = Field(
        None, max_length=253, description="RuntimeClass (e.g. gvisor, kata) where available."
    )
    secrets: list[str] = Field(
        default_factory=list,
        max_length=MAX_SECRETS,
        description="Secrets in the tenant's namespace its code may read "
        "(env.secrets[name][key]); mounted read-only into the sandbox, never as environment "
        "variables, and their values are masked (***) in what reaches the status.",
        json_schema_extra={
            "items": {"type": "string", "maxLength": 253, "pattern": SECRET_NAME.pattern},
            "x-kubernetes-list-type": "set",
        },
    )
    idle_after: str | None = duration_field(
        None,
        "How long the sandbox runs with nothing to do before it is scaled to zero (its "
        "egress proxy too; its volumes and data stay). The next instance that needs it "
        "starts it (WaitingForSandbox meanwhile), and a known wake-up (a sleep, an event's "
        "timeout, a schedule) starts it ahead by its measured cold start. 0s: never. "
        "Default: the operator's (the chart's sandbox.idleAfter).",
    )
    always_on: bool = Field(
        False,
        description="Never scale the sandbox to zero, whatever idleAfter says (for "
        "latency-sensitive tenants).",
    )
    egress_hosts: list[EgressHost] = Field(
        default_factory=list,
        max_length=64,
        description="Host names tenant code may reach, through the tenant's egress proxy "
        "(HTTPS_PROXY/HTTP_PROXY in the sandbox); anything else is refused by the proxy.",
    )
    egress: list[str] = checked_strings(
        max_items=32,
        max_length=64,
        check="isCIDR(self)",
        message="egress entries must be CIDRs like 10.0.0.0/8 or 2001:db8::/32",
        description="CIDRs tenant code may reach directly; empty means none. The cluster's "
        "own ranges (the operator's protected CIDRs) are cut out of every entry.",
    )


class HistorySpec(Model):
    """Where the tenant's finished instances and log lines go: its own history store, a
    volume only the sandbox's runner mounts (tenant code cannot read or rewrite it)."""

    keep_finished_for: str | None = duration_field(
        None,
        "How long a finished instance stays a WorkflowInstance object before it is "
        "archived into the tenant's history and deleted. Default: the operator's "
        "(the chart's finishedTTLSeconds, 7 days).",
    )
    retention: str = duration_field(
        "30d", "How long archived instances and log lines are kept in the history."
    )
    size: str = Field(
        "1Gi",
        pattern=QUANTITY,
        max_length=32,
        description="The history volume's size; a full history refuses new records (the "
        "instance stays, with Archived=False) rather than losing any.",
    )


class TenantSpec(Model):
    owners: list[Subject] = Field(
        default_factory=list, max_length=64, description="Subjects that get the tenant-editor Role."
    )
    limits: TenantLimits = Field(
        default_factory=TenantLimits, description="Quotas and rate limits."
    )
    sandbox: SandboxSpec = Field(default_factory=SandboxSpec, description="Sandbox settings.")
    history: HistorySpec = Field(
        default_factory=HistorySpec, description="The tenant's history: archive and logs."
    )


class TenantUsage(Model):
    running_instances: int = Field(0, description="Instances Running, Waiting or Paused.")
    queued_instances: int = Field(0, description="Instances waiting for a concurrency slot.")
    storage_bytes: int = Field(0, description="Size of the tenant's SQLite database.")
    starts_last_minute: int = Field(0, description="Instances started in the last 60 s.")


class TenantStatus(ObservedStatus):
    namespace: str | None = Field(None, description="The tenant's namespace (tenant-<name>).")
    phase: Literal["Provisioning", "Ready", "Degraded", "Terminating"] | None = Field(
        None, description="Provisioning, Ready, Degraded or Terminating."
    )
    conditions: list[Condition] = conditions_field()
    usage: TenantUsage | None = Field(None, description="Current consumption.")
    observed_generation: int | None = Field(None, description="Last generation acted on.")


class Tenant(Resource):
    """A tenant of the platform: an isolated namespace, store and sandbox."""

    model_config = Model.model_config | {
        "json_schema_extra": cel(
            rule(
                f"self.metadata.name.matches('{DNS_LABEL}') && "
                f"size(self.metadata.name) <= {MAX_TENANT_NAME}",
                f"metadata.name must be a DNS label (lower-case letters, digits, '-') of at most "
                f"{MAX_TENANT_NAME} characters, because the tenant's namespace is "
                f"{NAMESPACE_PREFIX}<name>",
            )
        )
    }

    kind: str = "Tenant"
    spec: TenantSpec = Field(default_factory=TenantSpec, description="Desired state.")
    status: TenantStatus | None = Field(None, description="Observed state (operator-owned).")
