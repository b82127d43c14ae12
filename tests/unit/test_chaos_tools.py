"""The chaos suite's own tools: the fault proxy's choice of faults and the NetworkPolicy
evaluator used by the isolation matrix (checked against the policies tenants really get)."""

from __future__ import annotations

from collections import Counter

from e2e.chaos.netpol import allows, selects

from tenantflow.api.tenant import Tenant
from tenantflow.tenancy.manifests import OperatorSettings, network_policies
from tenantflow_dev.faultproxy import KINDS_BY_REQUEST, FaultPlan, FaultProxy


def _proxy(rate: float, seed: int = 7) -> FaultProxy:
    return FaultProxy("https://unused", None, FaultPlan(rate=rate, seed=seed))  # type: ignore[arg-type]


def test_the_fault_rate_is_honoured_and_kinds_fit_the_request() -> None:
    proxy = _proxy(0.2)
    picks = {
        kind: Counter(proxy.pick(m, w) for _ in range(5000))
        for kind, m, w in (
            ("read", "GET", False),
            ("write", "PATCH", False),
            ("watch", "GET", True),
        )
    }
    for kind, counts in picks.items():
        faults = sum(n for k, n in counts.items() if k is not None)
        assert 0.17 < faults / 5000 < 0.23, (kind, counts)
        assert {k for k in counts if k} == set(KINDS_BY_REQUEST[kind]), kind
    assert "conflict409" not in picks["read"] and "watch_cut" not in picks["write"]


def test_the_same_seed_gives_the_same_faults() -> None:
    a, b = _proxy(0.5, seed=3), _proxy(0.5, seed=3)
    assert [a.pick("POST", False) for _ in range(50)] == [b.pick("POST", False) for _ in range(50)]
    assert all(_proxy(0.0).pick("POST", False) is None for _ in range(100))


def test_selectors() -> None:
    labels = {"app": "x", "tier": "web"}
    assert selects({}, labels) and selects(None, labels)
    assert selects({"matchLabels": {"app": "x"}}, labels)
    assert not selects({"matchLabels": {"app": "y"}}, labels)
    expr = {"key": "tier", "operator": "In", "values": ["web", "db"]}
    assert selects({"matchExpressions": [expr]}, labels)
    assert not selects({"matchExpressions": [{**expr, "operator": "NotIn"}]}, labels)
    assert not selects({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, labels)


def _policies(egress: list[str] | None = None) -> list[dict]:  # type: ignore[type-arg]
    tenant = Tenant.model_validate(
        {"metadata": {"name": "a"}, "spec": {"sandbox": {"egress": egress or []}}}
    )
    return network_policies(tenant, OperatorSettings(namespace="tenantflow-system"))


def test_tenant_policies_admit_the_operator_and_nobody_else() -> None:
    policies = _policies()
    sandbox, other = {"app.kubernetes.io/name": "sandbox"}, {"app": "else"}
    assert allows(policies, "Ingress", sandbox, peer_namespace="tenantflow-system")
    assert not allows(policies, "Ingress", sandbox, peer_namespace="tenant-b")
    assert not allows(policies, "Ingress", other, peer_namespace="tenantflow-system")
    assert not allows(policies, "Egress", sandbox, peer_namespace="tenant-b")
    assert allows([], "Ingress", sandbox, peer_namespace="tenant-b"), "no policy: open"


def test_an_egress_cidr_counts_as_a_path() -> None:
    """A CIDR may cover other tenants' pod IPs: the evaluator reports it rather than guess."""
    sandbox = {"app.kubernetes.io/name": "sandbox"}
    assert allows(_policies(["10.0.0.0/8"]), "Egress", sandbox, peer_namespace="tenant-b")
