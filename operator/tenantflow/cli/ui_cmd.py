"""`tenantflow ui`: the web UI on this machine, acting with your own kubeconfig.

tenantflow ui                       # http://127.0.0.1:8090/?token=... (printed)
tenantflow ui --auth-mode client --address 0.0.0.0   # in a cluster (the chart)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import click
from aiohttp import web

from tenantflow.cli import common
from tenantflow.cli.common import (
    INT,
    KUBE_OPTIONS,
    Choice,
    Command,
    Target,
    context_namespace,
    target,
    with_options,
)
from tenantflow.ui.access import Access
from tenantflow.ui.server import Settings, app


@click.command("ui", cls=Command, help="serve the web UI (as you: your kubeconfig, your RBAC)")
@click.option("--address", default="127.0.0.1", help="listen address (default: loopback)")
@click.option("--port", type=INT, default=8090, help="listen port (0: any free one)")
@click.option(
    "--auth-mode",
    type=Choice(("local", "client")),
    default="local",
    help="local: your kubeconfig, a token in the printed URL; client: each request's "
    "own bearer token (in a cluster, as the chart runs it)",
)
@with_options(*KUBE_OPTIONS)
@click.pass_context
def ui(ctx: click.Context, /, address: str, port: int, auth_mode: str, **options: Any) -> None:
    """-n: the namespace shown to users who may not list Tenants."""
    chosen = target(ctx, options)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(chosen, address, port, auth_mode))


async def _serve(chosen: Target, address: str, port: int, auth_mode: str) -> None:
    in_cluster = auth_mode == "client" and not chosen.kubeconfig
    kube = await common.connect(None if in_cluster else chosen.kubeconfig, chosen.context)
    namespace = chosen.namespace or os.environ.get("TENANTFLOW_UI_NAMESPACE") or ""
    if not namespace and not in_cluster:
        namespace = context_namespace(chosen.kubeconfig, chosen.context)
    access = Access(kube, mode=auth_mode)
    runner = web.AppRunner(app(Settings(access, (namespace,) if namespace else ())))
    await runner.setup()
    site = web.TCPSite(runner, address, port)
    await site.start()
    bound = runner.addresses[0][1]
    access.hosts = frozenset({f"127.0.0.1:{bound}", f"localhost:{bound}", f"{address}:{bound}"})
    if auth_mode == "local":
        click.echo(f"tenantflow UI: http://127.0.0.1:{bound}/?token={access.token}")
    else:
        click.echo(f"tenantflow UI on {address}:{bound} (each request's own token)")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await kube.close()
