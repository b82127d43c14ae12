"""`tenantflow operator`: run the controllers (also `python -m tenantflow`)."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("operator", help="run the tenantflow operator")
    p.add_argument("--metrics-port", type=int, default=8080, help="Prometheus /metrics (0: off)")
    p.add_argument("--liveness-port", type=int, default=8081, help="/healthz (0: off)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tenantflow.controllers.wiring import run as run_operator

    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    run_operator(
        metrics_port=args.metrics_port,
        liveness_port=args.liveness_port,
    )
    return 0
