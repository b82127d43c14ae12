"""The operator process: kopf settings, startup/shutdown, and `run()`."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from typing import Any

import kopf
from prometheus_client import start_http_server

from tenantflow.controllers import definition as _definition  # noqa: F401 - handlers
from tenantflow.controllers import instance, runtime
from tenantflow.controllers import tenant as _tenant  # noqa: F401 - registers handlers
from tenantflow.kube.client import Kube
from tenantflow.observability.logging import configure, get_logger

log = get_logger("tenantflow.operator")


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the service account; elsewhere: $KUBECONFIG (the dev cluster's, say).

    kopf's own service-account login names the API server `kubernetes.default.svc`, which
    needs cluster DNS; like client-go's in-cluster config, use the address the kubelet
    hands every pod (KUBERNETES_SERVICE_HOST/PORT), so the operator runs without DNS."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if not host:
        return kopf.login_with_kubeconfig(**kwargs)
    info = kopf.login_with_service_account(**kwargs)
    if info is None:
        return None
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    host = f"[{host}]" if ":" in host else host
    return dataclasses.replace(info, server=f"https://{host}:{port}")


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Bookkeeping kept cheap: progress in status (one patch we make anyway), no per-log Events.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf")
    settings.persistence.finalizer = "tenantflow.dev/finalizer"
    settings.posting.level = logging.WARNING
    settings.peering.name = "tenantflow"
    settings.peering.mandatory = False
    settings.peering.stealth = True
    settings.watching.server_timeout = 300
    # Tenant/definition events handed on at once (no 0.1 s batch window): a definition's
    # event is what invalidates the cached active revision after a rollback
    settings.batching.batch_window = 0.01
    settings.batching.idle_timeout = 1.0
    kube = await Kube.connect(os.environ.get("KUBECONFIG"), connections=32, proxy_from_env=False)
    runtime.set_runtime(runtime.Runtime(kube=kube, settings=runtime.settings_from_env()))
    driver = instance.driver()
    await driver.rebuild()
    runtime.get().tasks.append(asyncio.create_task(driver.timers.run()))
    runtime.get().tasks.append(asyncio.create_task(instance.watch_instances(driver)))
    log.info("operator started", namespace=runtime.get().settings.namespace)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    rt = runtime.get()
    for task in rt.tasks:
        task.cancel()
    for q in rt.queues.values():
        await q.drain()
    if rt.instances is not None:
        await rt.instances.queue.drain()
        await rt.instances.transport.close()
        rt.instances.sandboxes.close()
    await rt.kube.close()
    runtime.set_runtime(None)


def run(*, metrics_port: int, liveness_port: int, standalone: bool, priority: int) -> None:
    """Run until SIGINT/SIGTERM. Metrics at :metrics_port/metrics, liveness at /healthz."""
    configure()
    if metrics_port:
        start_http_server(metrics_port)
    kopf.run(
        clusterwide=True,
        standalone=standalone,
        priority=priority,
        peering_name="tenantflow",
        liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None,
    )
