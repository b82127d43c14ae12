"""WorkflowDefinition: the tenant's code, versioned as immutable revisions."""

from __future__ import annotations

from pydantic import Field

from tenantflow.api.common import (
    DNS_SUBDOMAIN,
    Model,
    ObservedStatus,
    Resource,
    cel,
    duration_field,
    rule,
)
from tenantflow.durations import format_duration
from tenantflow.engine.options import Backoff, RetryPolicy, StepDefaults

MAX_INLINE_SOURCE = 256 * 1024
PY_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ConfigMapKeyRef(Model):
    name: str = Field(
        pattern=DNS_SUBDOMAIN,
        max_length=253,
        description="ConfigMap in the definition's namespace.",
    )
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key holding the Python source.",
    )


class Source(Model):
    """Where the Python source comes from: exactly one of inline or configMapRef."""

    model_config = Model.model_config | {
        "json_schema_extra": cel(
            rule(
                "has(self.inline) != has(self.configMapRef)",
                "spec.source must set exactly one of inline or configMapRef",
                reason="FieldValueInvalid",
            )
        )
    }

    inline: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_INLINE_SOURCE,
        description="The Python module source, inline.",
    )
    config_map_ref: ConfigMapKeyRef | None = Field(
        None, description="A ConfigMap key holding the source."
    )


_POLICY, _STEP = RetryPolicy(), StepDefaults()  # the engine's defaults are the CRD's


class Retries(Model):
    """The schema of the engine's RetryPolicy (`RetryPolicy.from_spec` reads it)."""

    limit: int = Field(_POLICY.limit, ge=0, le=1000, description="Retries after the first attempt.")
    delay: str = duration_field(format_duration(_POLICY.delay), "Delay before the first retry.")
    backoff: Backoff = Field(
        _POLICY.backoff, description="How the delay grows: constant, linear or exponential."
    )
    max_delay: str = duration_field(
        format_duration(_POLICY.max_delay), "Upper bound for any retry delay."
    )


class StepDefaultsSpec(Model):
    retries: Retries = Field(
        default_factory=Retries, description="Retry policy for steps that set none."
    )
    timeout: str = duration_field(
        format_duration(_STEP.timeout), "Per-attempt timeout for steps that set none."
    )


class WorkflowDefinitionSpec(Model):
    source: Source = Field(description="The workflow's Python source.")
    entrypoint: str = Field(
        "run",
        pattern=PY_IDENTIFIER,
        max_length=128,
        description="Name of the async function to run.",
    )
    defaults: StepDefaultsSpec = Field(
        default_factory=StepDefaultsSpec, description="Step defaults."
    )
    pinned_revision: int | None = Field(
        None, ge=1, description="When set, new instances run this revision (rollback)."
    )
    revision_history_limit: int = Field(
        50, ge=1, le=1000, description="Revisions kept besides those in use."
    )


class RevisionInfo(Model):
    revision: int = Field(ge=1, description="Revision number, from 1.")
    sha256: str = Field(description="SHA-256 of the source.")
    created_at: str | None = Field(None, description="When it was created (RFC 3339).")


class WorkflowDefinitionStatus(ObservedStatus):
    latest_revision: int | None = Field(None, description="Newest revision.")
    active_revision: int | None = Field(
        None, description="Revision new instances run (= pinnedRevision when set)."
    )
    revisions: list[RevisionInfo] = Field(
        default_factory=list, description="Known revisions, newest last."
    )


class WorkflowDefinition(Resource):
    """A workflow's code: each distinct source becomes an immutable revision."""

    kind: str = "WorkflowDefinition"
    spec: WorkflowDefinitionSpec = Field(description="Desired state.")
    status: WorkflowDefinitionStatus | None = Field(None, description="Observed state.")
