"""Pydantic models -> apiextensions.k8s.io/v1 CustomResourceDefinitions.

pydantic's JSON Schema is turned into a *structural* OpenAPI schema: $refs inlined,
Optional[X] becomes X (an explicit null is pruned by the API server), titles dropped,
metadata left to the API server, and our `x-kubernetes-*` extensions kept verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tenantflow.api.definition import WorkflowDefinition
from tenantflow.api.instance import WorkflowInstance
from tenantflow.api.schedule import WorkflowSchedule
from tenantflow.api.tenant import Tenant
from tenantflow.vocabulary import API_VERSION, DEPRECATED_VERSIONS, GROUP, SERVED_VERSIONS, VERSION

_DROP = {"title", "$defs"}


@dataclass(frozen=True)
class Kind:
    model: type[BaseModel]
    plural: str
    short_names: tuple[str, ...]
    scope: str
    columns: tuple[tuple[str, str, str], ...]  # (name, type, jsonPath)
    # fields a list or watch may select on (`--field-selector`): filtered by the API server
    selectable: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.model.__name__


def kind_named(name: str) -> Kind:
    """The Kind of a kind's name (vocabulary.SCHEDULE, ...)."""
    return next(k for k in KINDS if k.name == name)


AGE = ("Age", "date", ".metadata.creationTimestamp")
KINDS = (
    Kind(
        Tenant,
        "tenants",
        ("tn",),
        "Cluster",
        (
            ("Namespace", "string", ".status.namespace"),
            ("Phase", "string", ".status.phase"),
            ("Running", "integer", ".status.usage.runningInstances"),
            ("Queued", "integer", ".status.usage.queuedInstances"),
            AGE,
        ),
    ),
    Kind(
        WorkflowDefinition,
        "workflowdefinitions",
        ("wfdef", "wfd"),
        "Namespaced",
        (
            ("Latest", "integer", ".status.latestRevision"),
            ("Active", "integer", ".status.activeRevision"),
            ("Rollout", "string", ".status.rollout.phase"),
            ("Weight", "integer", ".status.rollout.weight"),
            ("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
            AGE,
        ),
    ),
    Kind(
        WorkflowInstance,
        "workflowinstances",
        ("wfinst", "wfi"),
        "Namespaced",
        (
            ("Workflow", "string", ".spec.workflowRef.name"),
            ("Revision", "integer", ".status.revision"),
            ("Phase", "string", ".status.phase"),
            ("Steps", "integer", ".status.stepCount"),
            AGE,
        ),
        (".spec.workflowRef.name", ".status.phase", ".status.revision"),
    ),
    Kind(
        WorkflowSchedule,
        "workflowschedules",
        ("wfsched", "wfs"),
        "Namespaced",
        (
            ("Schedule", "string", ".spec.schedule"),
            ("TimeZone", "string", ".spec.timeZone"),
            ("Workflow", "string", ".spec.workflowRef.name"),
            ("Overlap", "string", ".spec.overlapPolicy"),
            ("Suspend", "boolean", ".spec.suspend"),
            ("Last", "date", ".status.lastScheduleTime"),
            ("Next", "string", ".status.nextRunTimes[0]"),
            ("Active", "integer", ".status.activeCount"),
            AGE,
        ),
    ),
)


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    inlined = _inline(node, defs)
    if inlined is not None:
        return _structural(inlined, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or (key == "default" and value is None):
            continue
        if key == "additionalProperties" and value is False:
            continue  # not structural; the API server prunes (kubectl: strict field errors)
        if key == "const":  # a one-value Literal; OpenAPI v3 in a CRD knows only enum
            out["enum"] = [value]
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key.startswith("x-kubernetes-"):
            out[key] = value
        else:
            out[key] = _structural(value, defs)
    return out


def _inline(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any] | None:
    """A `$ref` replaced by its definition, an optional (`anyOf` with null) by its one
    option; None when `node` is neither."""
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o != {"type": "null"}]
        if len(options) == 1:
            return {**options[0], **{k: v for k, v in node.items() if k != "anyOf"}}
    return None


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _structural(raw, raw.get("$defs", {}))
    props = schema["properties"]
    props["apiVersion"] = {"type": "string", "description": API_VERSION}
    props["kind"] = {"type": "string", "description": model.__name__}
    props["metadata"] = {"type": "object"}
    schema.pop("required", None)
    schema["required"] = [k for k in ("spec",) if k in props and k in raw.get("required", [])]
    if not schema["required"]:
        del schema["required"]
    return schema


def crd(kind: Kind) -> dict[str, Any]:
    singular = kind.name.lower()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "tenantflow"},
        },
        "spec": {
            "group": GROUP,
            "scope": kind.scope,
            "names": {
                "kind": kind.name,
                "listKind": f"{kind.name}List",
                "plural": kind.plural,
                "singular": singular,
                "shortNames": list(kind.short_names),
                "categories": ["tenantflow"],
            },
            "versions": [_version(kind, name) for name in SERVED_VERSIONS],
            # every served version has one schema: the API server converts by apiVersion
            "conversion": {"strategy": "None"},
        },
    }


def _version(kind: Kind, name: str) -> dict[str, Any]:
    """One served version of `kind`: VERSION is stored, the others are deprecated."""
    schema = openapi_schema(kind.model)
    return {
        "name": name,
        "served": True,
        "storage": name == VERSION,
        **(
            {"deprecated": True, "deprecationWarning": DEPRECATED_VERSIONS[name]}
            if name in DEPRECATED_VERSIONS
            else {}
        ),
        "subresources": {"status": {}},
        "additionalPrinterColumns": [
            {"name": n, "type": t, "jsonPath": p} for n, t, p in kind.columns
        ],
        "schema": {"openAPIV3Schema": schema},
        **(
            {"selectableFields": [{"jsonPath": p} for p in kind.selectable]}
            if kind.selectable
            else {}
        ),
    }
