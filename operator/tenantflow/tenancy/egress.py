"""A tenant's ways out, rendered from its Tenant (pure).

Two levers, both the platform's (the Tenant), never the tenant code's:
- `spec.sandbox.egressHosts`: host names, through a per-tenant egress proxy
  (`tenantflow.egress.proxy`) that the sandbox's NetworkPolicy forces all traffic through;
- `spec.sandbox.egress`: CIDRs reached directly, with the cluster's own ranges (the
  operator's protected CIDRs: pods, services, nodes) cut out of every entry, so no entry
  can open a path to another tenant's pods.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from tenantflow.api.tenant import Tenant
from tenantflow.tenancy.pods import container_security, pod_security
from tenantflow.vocabulary import PROXY_VARIABLES

PROXY = "egress-proxy"
PROXY_PORT = 3128
PROXY_METRICS_PORT = 9090
PROXY_UID = 10003  # neither the runner's nor the worker's
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def cut(cidrs: list[str], protected: tuple[str, ...]) -> tuple[list[dict[str, Any]], list[str]]:
    """(ipBlocks, refused): each CIDR with the protected ranges inside it excepted; a CIDR
    that lies inside a protected range is refused whole."""
    guarded = [ipaddress.ip_network(p, strict=False) for p in protected]
    blocks, refused = [], []
    for text in cidrs:
        net = ipaddress.ip_network(text, strict=False)
        if any(_within(net, g) for g in guarded):
            refused.append(text)
            continue
        inside = sorted(str(g) for g in guarded if g.version == net.version and _within(g, net))
        blocks.append({"cidr": str(net), **({"except": inside} if inside else {})})
    return blocks, refused


def _within(inner: Network, outer: Network) -> bool:
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def refused_message(refused: list[str], protected: tuple[str, ...]) -> str:
    return (
        f"spec.sandbox.egress {', '.join(refused)} lies inside the cluster's protected ranges "
        f"({', '.join(protected)}: pods, services, nodes) and was not applied; reach hosts "
        "inside the cluster through spec.sandbox.egressHosts, or remove the entry"
    )


def proxy_args(tenant: Tenant, protected: tuple[str, ...]) -> list[str]:
    args = ["-m", "tenantflow.egress.proxy", "--tenant", tenant.metadata.name]
    args += ["--port", str(PROXY_PORT), "--metrics-port", str(PROXY_METRICS_PORT)]
    for entry in tenant.spec.sandbox.egress_hosts:
        args += ["--allow", f"{entry.host}:{','.join(str(p) for p in entry.ports)}"]
        args += [a for address in entry.addresses for a in ("--pin", f"{entry.host}={address}")]
    for cidr in protected:
        args += ["--protect", cidr]
    return args


def proxy_env(proxy_host: str) -> list[dict[str, str]]:
    """The worker's proxy variables (what urllib, requests, git and curl read)."""
    url = f"http://{proxy_host}:{PROXY_PORT}"
    return [{"name": name, "value": url} for name in PROXY_VARIABLES]


def proxy_pod_spec(tenant: Tenant, image: str, protected: tuple[str, ...]) -> dict[str, Any]:
    """The proxy runs the operator's sandbox image, never a tenant-chosen one: it is the
    platform's code, holding the tenant's way out."""
    return {
        "serviceAccountName": "tenant-sandbox",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security(),
        "containers": [
            {
                "name": "proxy",
                "image": image,
                "args": proxy_args(tenant, protected),
                "env": [{"name": "TENANTFLOW_LOG_FORMAT", "value": "json"}],  # audit lines
                "ports": [
                    {"name": "proxy", "containerPort": PROXY_PORT},
                    {"name": "metrics", "containerPort": PROXY_METRICS_PORT},
                ],
                "readinessProbe": {"tcpSocket": {"port": PROXY_PORT}, "periodSeconds": 2},
                "resources": {
                    "requests": {"cpu": "20m", "memory": "48Mi"},
                    "limits": {"cpu": "500m", "memory": "128Mi"},
                },
                "securityContext": container_security(PROXY_UID),
            }
        ],
    }


def proxy_egress(protected: tuple[str, ...]) -> list[dict[str, Any]]:
    """Where the proxy pod itself may connect: anywhere but the protected ranges (the
    proxy checks the same ranges on every address it resolves; this is the second wall)."""
    blocks, _ = cut(["0.0.0.0/0", "::/0"], protected)
    return [{"to": [{"ipBlock": b} for b in blocks]}]
