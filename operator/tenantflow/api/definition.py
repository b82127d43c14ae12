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
from tenantflow.engine.loader import FILE_NAME, MAX_CODE_BYTES, MAX_FILES
from tenantflow.engine.options import Backoff, RetryPolicy, StepDefaults

PY_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
DEFAULT_MAIN = "main"


class ConfigMapKeyRef(Model):
    name: str = Field(
        pattern=DNS_SUBDOMAIN,
        max_length=253,
        description="ConfigMap in the definition's namespace.",
    )
    key: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key holding the Python source (one module). Without it, every key "
        "ending in .py is a module of the workflow (multi-file).",
    )


class Source(Model):
    """The workflow's Python code: exactly one of inline, files or configMapRef."""

    model_config = Model.model_config | {
        "json_schema_extra": cel(
            rule(
                "(has(self.inline) ? 1 : 0) + (has(self.files) ? 1 : 0) + "
                "(has(self.configMapRef) ? 1 : 0) == 1",
                "spec.source must set exactly one of inline, files or configMapRef",
                reason="FieldValueInvalid",
            )
        )
    }

    inline: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_CODE_BYTES,
        description="The Python module source, inline (one module).",
    )
    files: dict[str, str] | None = Field(
        None,
        description="Several modules, inline: file name (helpers.py) -> source. Each is "
        "importable by its name (import helpers); the entrypoint is in spec.source.main.",
        json_schema_extra={
            "maxProperties": MAX_FILES,
            "minProperties": 1,
            "additionalProperties": {"type": "string", "maxLength": MAX_CODE_BYTES},
            **cel(
                rule(
                    f"self.all(f, f.matches('{FILE_NAME.pattern}'))",
                    "spec.source.files keys must be Python module file names like helpers.py",
                )
            ),
        },
    )
    config_map_ref: ConfigMapKeyRef | None = Field(
        None, description="A ConfigMap holding the source (one key, or every .py key)."
    )
    main: str = Field(
        DEFAULT_MAIN,
        pattern=PY_IDENTIFIER,
        max_length=128,
        description="Multi-file code: the module (file name without .py) that defines "
        "the entrypoint.",
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
        None,
        ge=1,
        description="When set, new instances run this revision: Git's way to pin one "
        "(it overrides `tenantflow rollback`, which keeps its choice out of the spec).",
    )
    revision_history_limit: int = Field(
        50, ge=1, le=1000, description="Revisions kept besides those in use."
    )


class RevisionInfo(Model):
    revision: int = Field(ge=1, description="Revision number, from 1.")
    sha256: str = Field(description="SHA-256 of the code (every file, its name and main).")
    created_at: str | None = Field(None, description="When it was created (RFC 3339).")


class WorkflowDefinitionStatus(ObservedStatus):
    latest_revision: int | None = Field(None, description="Newest revision.")
    active_revision: int | None = Field(
        None,
        description="Revision new instances run: spec.pinnedRevision when set, else the "
        "revision `tenantflow rollback` chose (rolledBackTo), else the newest.",
    )
    rolled_back_to: int | None = Field(
        None,
        description="The revision `tenantflow rollback` chose (the tenantflow.dev/rollback-to "
        "annotation, kept out of the Git-owned spec); spec.pinnedRevision overrides it.",
    )
    revisions: list[RevisionInfo] = Field(
        default_factory=list, description="Known revisions, newest last."
    )


class WorkflowDefinition(Resource):
    """A workflow's code: each distinct source becomes an immutable revision."""

    kind: str = "WorkflowDefinition"
    spec: WorkflowDefinitionSpec = Field(description="Desired state.")
    status: WorkflowDefinitionStatus | None = Field(None, description="Observed state.")
