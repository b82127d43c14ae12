"""`tenantflow operator`: run the controllers (also `python -m tenantflow`)."""

from __future__ import annotations

import os
from typing import Any

import click

from tenantflow.cli.common import INT, KUBE_OPTIONS, Command, target, with_options


@click.command("operator", cls=Command, help="run the tenantflow operator")
@click.option("--metrics-port", type=INT, default=8080, help="Prometheus /metrics (0: off)")
@click.option("--liveness-port", type=INT, default=8081, help="/healthz (0: off)")
@with_options(*KUBE_OPTIONS)
@click.pass_context
def operator(ctx: click.Context, /, metrics_port: int, liveness_port: int, **options: Any) -> None:
    from tenantflow.controllers.wiring import run as run_operator

    chosen = target(ctx, options)
    if chosen.kubeconfig:
        os.environ["KUBECONFIG"] = chosen.kubeconfig
    run_operator(metrics_port=metrics_port, liveness_port=liveness_port)
