"""The runner fails closed while its pod's network is open.

A NetworkPolicy enforcer programs a new pod *after* the pod starts (kube-router, Calico,
Cilium all have that window), and an enforcer whose watches lag — after an API server or
etcd restart — can leave a pod unfiltered for longer. Tenant code must not run in that
window: it could reach the API server, the node and other tenants' pods.

So the runner keeps trying to connect to an address every tenant's policies deny (by
default the API server's in-cluster service, which the pod's environment names). A
connection that succeeds means the pod is not isolated: the runner reports not-ready (the
operator sends advances only to ready pods) and refuses any advance that still arrives.
A refused, dropped or unroutable connection means the policies hold. The runner starts
not isolated and becomes ready only after the first check says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass

from prometheus_client import Gauge

from tenantflow.observability.logging import get_logger

log = get_logger("tenantflow.runner")
ISOLATED = Gauge(
    "tenantflow_runner_network_isolated",
    "1 while the canary address is unreachable (the pod's NetworkPolicy holds), else 0.",
)
IN_CLUSTER_API = "kubernetes"  # the canary's default: the API server's service
CHECK_EVERY = 2.0
CONNECT_TIMEOUT = 1.0


def canary_address(spec: str) -> tuple[str, int]:
    """`kubernetes` (the API server's service, from the pod's environment) or HOST:PORT."""
    if spec == IN_CLUSTER_API:
        host, port = (
            os.environ.get("KUBERNETES_SERVICE_HOST"),
            os.environ.get("KUBERNETES_SERVICE_PORT"),
        )
        if not host or not port:
            raise ValueError(
                "--isolation-canary kubernetes needs KUBERNETES_SERVICE_HOST/PORT in the "
                "environment (every pod has them); give HOST:PORT instead"
            )
        return host, int(port)
    host, sep, port = spec.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--isolation-canary {spec!r}: expected HOST:PORT or 'kubernetes'")
    return host.strip("[]"), int(port)


@dataclass
class IsolationCanary:
    host: str
    port: int
    every: float = CHECK_EVERY
    isolated: bool = False
    problem: str = "the pod's network isolation has not been checked yet"
    checked: bool = False

    async def check(self) -> bool:
        """One attempt: True when the canary could not be reached (the policy holds)."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError):
            self._set(True, "")
            return True
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        self._set(
            False,
            f"this pod can connect to {self.host}:{self.port}, which its NetworkPolicy denies: "
            "the policy is not enforced yet (a new pod, or the enforcer is catching up), or an "
            "egress rule of the Tenant covers that address; tenant code waits until it is",
        )
        return False

    def _set(self, isolated: bool, problem: str) -> None:
        if isolated != self.isolated or not self.checked:
            (log.info if isolated else log.warning)(
                "network isolation changed", isolated=isolated, problem=problem or None
            )
        self.isolated, self.problem, self.checked = isolated, problem, True
        ISOLATED.set(1 if isolated else 0)

    async def watch(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.every)
