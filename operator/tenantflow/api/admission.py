"""The admission policy shipped with the CRDs: every WorkflowInstance created in a tenant
namespace gets the namespace's shard label, so that each operator replica watches only the
instances of the shards it holds (docs/architecture.md, "Replicas")."""

from __future__ import annotations

from typing import Any

from tenantflow.vocabulary import GROUP, SHARD_LABEL

NAME = f"{GROUP.split('.')[0]}-shard-label"
_LABELS = {"app.kubernetes.io/part-of": "tenantflow"}
_NS_LABELS = "namespaceObject.metadata.labels"


def shard_label_policy() -> list[dict[str, Any]]:
    """A MutatingAdmissionPolicy and its binding. Failure is ignored: an instance the
    policy could not label is still driven (its replica finds it by its namespace)."""
    # the condition is in the expression: matchConditions cannot see namespaceObject
    # (tried on 1.37: the policy then never applies)
    has_label = f'has({_NS_LABELS}) && "{SHARD_LABEL}" in {_NS_LABELS}'
    labelled = (
        f'Object{{metadata: Object.metadata{{labels: {{"{SHARD_LABEL}": '
        f'{_NS_LABELS}["{SHARD_LABEL}"]}}}}}}'
    )
    apply = f"{has_label} ? {labelled} : Object{{}}"
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicy",
            "metadata": {"name": NAME, "labels": _LABELS},
            "spec": {
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [GROUP],
                            "apiVersions": ["*"],
                            "operations": ["CREATE"],
                            "resources": ["workflowinstances"],
                        }
                    ]
                },
                "failurePolicy": "Ignore",
                "reinvocationPolicy": "Never",
                "mutations": [
                    {
                        "patchType": "ApplyConfiguration",
                        "applyConfiguration": {"expression": apply},
                    }
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicyBinding",
            "metadata": {"name": NAME, "labels": _LABELS},
            "spec": {"policyName": NAME},
        },
    ]
