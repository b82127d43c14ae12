"""Find a tenant's runner: its HMAC key, and where it listens (cluster Service or local jail).

In a cluster the runner is reached at a ready pod of its (headless) Service, read from the
Service's EndpointSlices: the operator needs neither cluster DNS (the dev node has none) nor
a service proxy hop, a runner that is not ready is a clear, retried `SandboxNotReady`
instead of a resolver error, and a failed call forgets the address so that a restarted
pod's new one is read again.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import Callable

import aiohttp

from tenantflow.cache import Cache
from tenantflow.kube.client import KubeApi
from tenantflow.sandbox.client.transport import Endpoint, SandboxUnavailable
from tenantflow.sandbox.jail.local import LocalSandboxes
from tenantflow.tenancy import manifests
from tenantflow.tenancy.idle import WAITING_FOR_SANDBOX, SandboxDemand
from tenantflow.vocabulary import ObjectKey, namespace_of

ENDPOINT_TTL = 10.0  # seconds; a rotated key or a moved runner is picked up within this
PROBE_SECONDS = 0.5  # a waking runner's readiness check, asked by the operator itself
SANDBOX_PODS = f"app.kubernetes.io/name={manifests.SANDBOX}"


class Sandboxes:
    """`local` (demo/CI: jailed runner on the PV's directory) or `cluster` (the Service)."""

    def __init__(
        self,
        kube: KubeApi,
        mode: str | None = None,
        demand: SandboxDemand | None = None,
        wake: Callable[[str], None] = lambda tenant: None,
    ) -> None:
        self.kube = kube
        # when each tenant's sandbox was last needed, and whether it is at zero (shared
        # with the tenant controller, which scales it); `wake` asks that controller to
        # start one that is at zero
        self.demand = demand if demand is not None else SandboxDemand()
        self.wake = wake
        in_cluster = "KUBERNETES_SERVICE_HOST" in os.environ
        self.mode = (
            mode
            or os.environ.get("TENANTFLOW_SANDBOX_TRANSPORT")
            or ("cluster" if in_cluster else "local")
        )
        self.local = LocalSandboxes() if self.mode == "local" else None
        # what the API says about a tenant's runner: its key, and its URL (cluster) or its
        # data directory (local), remembered briefly
        self.found: Cache[str, tuple[bytes, str]] = Cache(maxsize=4096, ttl=ENDPOINT_TTL)
        # a waking sandbox's runner the operator found answering (runner_answers) before
        # the kubelet, the StatefulSet and the EndpointSlice said it is ready
        self.answered: Cache[str, tuple[bytes, str]] = Cache(maxsize=4096, ttl=ENDPOINT_TTL)
        self.port = manifests.SANDBOX_PORT
        self._probe: aiohttp.ClientSession | None = None

    async def endpoint(self, tenant: str) -> Endpoint:
        """Where the tenant's runner listens. Asking is needing it: the sandbox's idle
        clock starts again; one scaled to zero is started, and the caller waits for it
        (`WaitingForSandbox`, no strike against the instance)."""
        self.demand.used(tenant, dt.datetime.now(dt.UTC))
        if self.local is None and not self.demand.available(tenant):
            self.found.discard(tenant)  # its next pod has another address
            self.wake(tenant)
            raise SandboxUnavailable(
                WAITING_FOR_SANDBOX,
                "the tenant's sandbox was scaled to zero while idle (spec.sandbox.idleAfter) "
                "and is starting; this goes on as soon as it is ready",
            )
        found = self.found.get(tenant) or self.answered.pop(tenant)
        if found is None:
            found = await self._lookup(tenant)
        self.found.put(tenant, found)
        key, where = found
        if self.local is None:
            return Endpoint(key=key, url=where)
        return await self.local.endpoint(tenant, where, key)  # (re)starts a dead runner

    def waiting_for(self, tenant: str, key: ObjectKey) -> None:
        """`key` waits for the tenant's sandbox to start: driven again once it is ready."""
        self.demand.wait(tenant, key)

    def forget(self, tenant: str) -> None:
        """After a failed call: read the key and volume again next time."""
        self.found.discard(tenant)
        self.answered.discard(tenant)

    async def runner_answers(self, tenant: str) -> bool:
        """Whether a runner of the tenant's sandbox answers its readiness check now, asked
        by the operator itself at the pod's address. A sandbox starting from zero is
        otherwise seen ready only when the kubelet's readiness probe passes (its period is
        1 s at the least: on average half a second after the runner could serve), then the
        StatefulSet's status and the EndpointSlice follow. The check is the one the probe
        makes (`/healthz`: 200 only once the pod's network is fenced, and an advance is
        refused before that whoever asks), and what answers is believed for readiness
        alone: every call after it is signed both ways. The address found is used by the
        next `endpoint()` (the EndpointSlice may not list it yet)."""
        if self.local is not None:
            return False
        ns = namespace_of(tenant)
        for pod in await self.kube.list("v1", "Pod", ns, label_selector=SANDBOX_PODS):
            status = pod.get("status") or {}
            ip = status.get("podIP")
            if not ip or pod["metadata"].get("deletionTimestamp"):
                continue
            if status.get("phase") != "Running":
                continue
            host = f"[{ip}]" if ":" in ip else ip
            url = f"http://{host}:{self.port}"
            if await self._healthy(url):
                key, _ = await self._lookup_key(tenant)
                self.answered.put(tenant, (key, url))
                return True
        return False

    async def _healthy(self, url: str) -> bool:
        if self._probe is None or self._probe.closed:
            self._probe = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROBE_SECONDS))
        try:
            async with self._probe.get(f"{url}/healthz") as response:
                return response.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def _lookup(self, tenant: str) -> tuple[bytes, str]:
        key, ns = await self._lookup_key(tenant)
        return key, (await self._data_dir(ns) if self.local is not None else await self._url(ns))

    async def _lookup_key(self, tenant: str) -> tuple[bytes, str]:
        """The tenant's HMAC key, and its namespace."""
        ns = namespace_of(tenant)
        secret = await self.kube.get("v1", "Secret", manifests.HMAC_SECRET, ns)
        if secret is None or "key" not in (secret.get("data") or {}):
            raise SandboxUnavailable(
                "SandboxNotProvisioned", f"secret {ns}/{manifests.HMAC_SECRET} is missing"
            )
        return base64.b64decode(secret["data"]["key"]), ns

    async def _url(self, ns: str) -> str:
        slices = await self.kube.list(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            ns,
            label_selector=f"kubernetes.io/service-name={manifests.SANDBOX}",
        )
        ready = sorted(
            address
            for piece in slices
            for endpoint in piece.get("endpoints") or []
            if (endpoint.get("conditions") or {}).get("ready")
            for address in endpoint.get("addresses") or []
        )
        if not ready:
            raise SandboxUnavailable(
                "SandboxNotReady",
                f"no ready sandbox pod behind service {ns}/{manifests.SANDBOX} yet "
                f"(kubectl -n {ns} get pods); retried",
            )
        host = f"[{ready[0]}]" if ":" in ready[0] else ready[0]
        return f"http://{host}:{manifests.SANDBOX_PORT}"

    async def _data_dir(self, ns: str) -> str:
        """The directory behind the tenant's bound PersistentVolume (hostPath)."""
        pvc = await self.kube.get("v1", "PersistentVolumeClaim", manifests.PVC, ns)
        volume = ((pvc or {}).get("spec") or {}).get("volumeName")
        pv = await self.kube.get("v1", "PersistentVolume", volume) if volume else None
        path = (((pv or {}).get("spec") or {}).get("hostPath") or {}).get("path")
        if not path:
            raise SandboxUnavailable(
                "StorageNotReady",
                f"{ns}/{manifests.PVC} is not bound to a hostPath volume; "
                "the local sandbox needs one (use the cluster transport elsewhere)",
            )
        return str(path)

    async def close(self) -> None:
        if self._probe is not None:
            await self._probe.close()
        if self.local is not None:
            self.local.stop_all()
