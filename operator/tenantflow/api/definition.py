"""WorkflowDefinition: the tenant's code, versioned as immutable revisions."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tenantflow.api.common import (
    Model,
    ObservedStatus,
    Resource,
    cel,
    duration_field,
    rule,
)
from tenantflow.durations import format_duration
from tenantflow.engine.loader import FILE_NAME
from tenantflow.engine.options import Backoff, RetryPolicy, StepDefaults
from tenantflow.engine.typescript import FILE_NAME as GUEST_FILE_NAME
from tenantflow.vocabulary import (
    ATTRIBUTE_KEY,
    DEFAULT_ENTRYPOINT,
    DEFAULT_REVISION_HISTORY,
    DNS_SUBDOMAIN,
    MAX_ATTRIBUTES,
    MAX_CODE_BYTES,
    MAX_FILES,
    PARAM_PATH,
    Language,
    RolloutDefaults,
    RolloutPhase,
)
from tenantflow.vocabulary import DEFAULT_MAIN as DEFAULT_MAIN  # (what the test kit imports)

PY_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


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
        description="Key holding the source (one module, in spec.source.language). Without "
        "it, every key ending in the language's extensions (.py; .ts/.mts/.js/.mjs) is a "
        "module of the workflow (multi-file).",
    )


class Source(Model):
    """The workflow's code: exactly one of inline, files or configMapRef, in Python,
    TypeScript or JavaScript."""

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
        description="The module's source, inline (one module, in spec.source.language).",
    )
    # No CRD default (None: python), for the reason TenantLimits.max_runtime_revisions_...
    # gives: an earlier release's operator refuses a field it does not know
    language: Language | None = Field(
        None,
        description="python (the default), typescript or javascript: the language of an "
        "inline source or "
        "a ConfigMap's modules. Files say theirs by their extension (helpers.py, steps.ts). "
        "TypeScript and JavaScript run in Deno: `export async function run(event, step, "
        "env)` or a class extending WorkflowEntrypoint.",
    )
    files: dict[str, str] | None = Field(
        None,
        description="Several modules, inline: file name (helpers.py, or helpers.ts) -> "
        "source, all in one language. Each is importable by its name (import helpers; "
        "import ... from './helpers.ts'); the entrypoint is in spec.source.main.",
        json_schema_extra={
            "maxProperties": MAX_FILES,
            "minProperties": 1,
            "additionalProperties": {"type": "string", "maxLength": MAX_CODE_BYTES},
            **cel(
                rule(
                    f"self.all(f, f.matches('{FILE_NAME.pattern}')) || "
                    f"self.all(f, f.matches('{GUEST_FILE_NAME.pattern}'))",
                    "spec.source.files keys must be module file names of one language, like "
                    "helpers.py or helpers.ts (.ts, .mts, .js, .mjs)",
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
        description="Multi-file code: the module (file name without its extension) that "
        "defines the entrypoint.",
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


class RolloutSpec(Model):
    """How a new revision reaches new instances: as a canary, step by step, and rolled back
    on its own when too many of its instances error."""

    strategy: Literal["Canary"] = Field("Canary", description="Canary (the only one so far).")
    steps: list[int] = Field(
        default_factory=lambda: list(RolloutDefaults.STEPS),
        min_length=1,
        max_length=10,
        description="Percent of new instances the new revision gets, step by step; past "
        "the last step it is promoted (stable).",
        json_schema_extra={
            "items": {"type": "integer", "minimum": 1, "maximum": 100},
            "x-kubernetes-list-type": "set",
            **cel(rule("self.isSorted()", "spec.rollout.steps must rise, like [10, 50, 100]")),
        },
    )
    min_instances: int = Field(
        RolloutDefaults.MIN_INSTANCES,
        ge=1,
        le=100_000,
        description="Finished instances of the new revision each step needs before the "
        "next, and before its error rate is judged.",
    )
    max_error_rate: float = Field(
        RolloutDefaults.MAX_ERROR_RATE,
        ge=0,
        le=1,
        description="Errored / finished instances of the new revision above which it is "
        "rolled back (0.2 = 20%).",
    )


class WorkflowDefinitionSpec(Model):
    source: Source = Field(description="The workflow's Python source.")
    entrypoint: str = Field(
        DEFAULT_ENTRYPOINT,
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
    search_attributes: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description="Search attributes every instance gets at its start, as labels: "
        "attribute name -> the field of its params it is read from (a dotted path, e.g. "
        "repo or git.branch). Filter by them live (kubectl get wfi -l repo=acme-web) and "
        "archived (tenantflow list -l repo=acme-web). Only the names declared here may "
        "also be set by the code while it runs (step.set_attributes).",
        json_schema_extra={
            "additionalProperties": {"type": "string", "maxLength": 128, "pattern": PARAM_PATH},
            **cel(
                rule(
                    f"self.all(k, k.matches('{ATTRIBUTE_KEY}'))",
                    "spec.searchAttributes: each name must be a label name without a prefix "
                    "(letters, digits, -_. ; at most 63); each value a params field like repo "
                    "or git.branch",
                )
            ),
        },
    )
    revision_history_limit: int = Field(
        DEFAULT_REVISION_HISTORY, ge=1, le=1000, description="Revisions kept besides those in use."
    )
    rollout: RolloutSpec | None = Field(
        None,
        description="Roll each new revision out as a canary, with automatic rollback; "
        "without it a new revision runs every new instance at once.",
    )


class RevisionInfo(Model):
    revision: int = Field(ge=1, description="Revision number, from 1.")
    sha256: str = Field(description="SHA-256 of the code (every file, its name and main).")
    created_at: str | None = Field(None, description="When it was created (RFC 3339).")


class RolloutStatus(Model):
    """The newest rollout (kept after it ends). Owned by the operator: Git never writes
    it, so a sync neither shows drift nor undoes a rollback."""

    revision: int = Field(ge=1, description="The revision being rolled out (the canary).")
    from_revision: int = Field(ge=1, description="The stable revision it started from.")
    phase: RolloutPhase = Field(
        description="Progressing, Paused (a pin holds it), Promoted, RolledBack, Aborted "
        "or Superseded."
    )
    step: int = Field(0, ge=0, description="Index into spec.rollout.steps.")
    weight: int = Field(0, ge=0, le=100, description="Percent of new instances it gets now.")
    started_at: str = Field(description="Start of the window its outcomes are counted in.")
    step_started_at: str | None = Field(None, description="When the current step began.")
    complete: int = Field(0, ge=0, description="Its instances Complete in the window.")
    errored: int = Field(0, ge=0, description="Its instances Errored in the window.")
    message: str = Field("", description="Where it stands and what to do.")
    last_command: str | None = Field(
        None, description="Id of the last `tenantflow rollout` command applied."
    )


class WorkflowDefinitionStatus(ObservedStatus):
    latest_revision: int | None = Field(None, description="Newest revision.")
    active_revision: int | None = Field(
        None,
        description="Revision new instances run: spec.pinnedRevision when set, else the "
        "revision `tenantflow rollback` chose (rolledBackTo), else the stable one (during "
        "a rollout, status.rollout.weight percent of them run the canary instead).",
    )
    stable_revision: int | None = Field(
        None,
        description="The newest revision that every new instance ran: promoted, or the "
        "newest when spec.rollout is not set.",
    )
    rollout: RolloutStatus | None = Field(None, description="The newest rollout.")
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
