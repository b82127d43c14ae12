"""`tenantflow ui`: the web UI on this machine, acting with your own kubeconfig.

tenantflow ui                       # http://127.0.0.1:8090/?token=... (printed)
tenantflow ui --auth-mode client --address 0.0.0.0   # in a cluster (the chart)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os

from aiohttp import web

from tenantflow.cli.workflow_cmds import Subparsers, context_namespace
from tenantflow.kube.client import Kube
from tenantflow.ui.access import Access
from tenantflow.ui.server import Settings, app


def register(sub: Subparsers) -> None:
    p = sub.add_parser("ui", help="serve the web UI (as you: your kubeconfig, your RBAC)")
    p.add_argument("--address", default="127.0.0.1", help="listen address (default: loopback)")
    p.add_argument("--port", type=int, default=8090, help="listen port (0: any free one)")
    p.add_argument(
        "--auth-mode",
        choices=("local", "client"),
        default="local",
        help="local: your kubeconfig, a token in the printed URL; client: each request's "
        "own bearer token (in a cluster, as the chart runs it)",
    )
    p.add_argument("-n", "--namespace", help="shown to users who may not list Tenants")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


async def _serve(args: argparse.Namespace) -> None:
    in_cluster = args.auth_mode == "client" and not args.kubeconfig
    kube = await Kube.connect(None if in_cluster else args.kubeconfig, args.context)
    namespace = args.namespace or os.environ.get("TENANTFLOW_UI_NAMESPACE") or ""
    if not namespace and not in_cluster:
        namespace = context_namespace(args)
    access = Access(kube, mode=args.auth_mode)
    runner = web.AppRunner(app(Settings(access, (namespace,) if namespace else ())))
    await runner.setup()
    site = web.TCPSite(runner, args.address, args.port)
    await site.start()
    port = runner.addresses[0][1]
    access.hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}", f"{args.address}:{port}"})
    if args.auth_mode == "local":
        print(f"tenantflow UI: http://127.0.0.1:{port}/?token={access.token}", flush=True)
    else:
        print(f"tenantflow UI on {args.address}:{port} (each request's own token)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await kube.close()
