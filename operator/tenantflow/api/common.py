"""Building blocks shared by the kinds: base model, conditions, CEL rule helper."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tenantflow.durations import DURATION_PATTERN
from tenantflow.vocabulary import API_VERSION

QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$"
MAX_PARAM_PROPERTIES = 64


class Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are an error."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
    )

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def rule(
    expression: str, message: str, *, field_path: str | None = None, reason: str | None = None
) -> dict[str, Any]:
    """One `x-kubernetes-validations` entry (CEL), evaluated by the API server."""
    out: dict[str, Any] = {"rule": expression, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def cel(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


def checked_strings(
    *, max_items: int, max_length: int, check: str, message: str, description: str
) -> Any:
    """A list of strings, each checked by one CEL rule (isIP, isCIDR, ...)."""
    return Field(
        default_factory=list,
        max_length=max_items,
        description=description,
        json_schema_extra={
            "items": {"type": "string", "maxLength": max_length, **cel(rule(check, message))}
        },
    )


def duration_field(default: str | None, description: str) -> Any:
    return Field(
        default,
        pattern=DURATION_PATTERN,
        max_length=32,
        description=f"{description} A duration like 10s, 5m, 24h or 1h30m.",
    )


def any_json(description: str, **extra: Any) -> Any:
    """A free-form JSON value (params, payloads, outputs): kept as sent."""
    return Field(
        None,
        description=description,
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True, **extra},
    )


class Condition(Model):
    """Kubernetes API conventions: one entry per `type`, latest observation wins."""

    type: str = Field(description="Condition type, e.g. Ready.", max_length=316)
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        "", description="CamelCase reason for the last transition.", max_length=1024
    )
    message: str = Field("", description="Human-readable details.", max_length=32768)
    last_transition_time: str | None = Field(
        None, description="When status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        None, description="metadata.generation this condition was computed from.", ge=0
    )


def conditions_field() -> Any:
    return Field(
        default_factory=list,
        description="Current state, by Kubernetes conventions.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class ObjectMeta(Model):
    """The parts of metadata the operator reads (the API server owns the rest)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Resource(Model):
    """apiVersion/kind/metadata, shared by the three kinds."""

    api_version: str = API_VERSION
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)


class ObservedStatus(Model):
    """What every status carries: conditions and the generation they describe."""

    conditions: list[Condition] = conditions_field()
    observed_generation: int | None = Field(None, description="Last generation acted on.")
