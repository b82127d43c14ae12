"""NetworkPolicy semantics, enough to check tenant isolation from the policies' contents
(the local control plane has no CNI to enforce them, so we evaluate them as one would)."""

from __future__ import annotations

from typing import Any


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Label selector match (matchLabels and matchExpressions); {} selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _peer_matches(peer: dict[str, Any], peer_namespace: str, own_namespace: str | None) -> bool:
    """Could `peer` match some pod in `peer_namespace`? ipBlocks are taken to match (a CIDR
    may cover pod IPs), so the check errs towards reporting a path."""
    if "ipBlock" in peer:
        return True
    ns_labels = {"kubernetes.io/metadata.name": peer_namespace}
    if "namespaceSelector" in peer:
        return selects(peer["namespaceSelector"], ns_labels)
    return peer_namespace == own_namespace  # a bare podSelector means this namespace only


def allows(
    policies: list[dict[str, Any]],
    direction: str,
    pod_labels: dict[str, str],
    *,
    peer_namespace: str,
) -> bool:
    """Do `policies` (all of one namespace) let a pod with `pod_labels` talk to some pod in
    `peer_namespace` in `direction` ("Ingress" or "Egress")? As Kubernetes decides it: a pod
    no policy of that direction selects is open; else one rule of one policy must admit."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    own = policies[0]["metadata"]["namespace"] if policies else None
    selecting = []
    for p in policies:
        spec = p["spec"]
        types = spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))
        if direction in types and selects(spec.get("podSelector"), pod_labels):
            selecting.append(spec)
    if not selecting:
        return True
    for spec in selecting:
        for rule in spec.get(key) or []:
            peers = rule.get(peers_key)
            if not peers or any(_peer_matches(x, peer_namespace, own) for x in peers):
                return True
    return False
