"""`tenantflow dev-cluster build|up|down|status|env`: the local control plane."""

from __future__ import annotations

import argparse
import json
import shlex

from tenantflow.devcluster import DevCluster, binaries


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dev-cluster", help="run a local control plane built from Go modules")
    verbs = p.add_subparsers(dest="verb", required=True)
    verbs.add_parser("build", help="build and cache the control-plane binaries")
    up = verbs.add_parser("up", help="start (or reuse) the cluster and wait until it is ready")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    verbs.add_parser("down", help="stop the processes `up` started and delete the data dir")
    verbs.add_parser("status", help="show component liveness and API readiness as JSON")
    verbs.add_parser("env", help="print `export` lines; use: eval $(tenantflow dev-cluster env)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cluster = DevCluster()
    if args.verb == "build":
        print(binaries.ensure_binaries())
    elif args.verb == "up":
        print(cluster.up(timeout=args.timeout))
    elif args.verb == "down":
        if not cluster.down():
            print("no dev cluster to stop")
    elif args.verb == "status":
        status = cluster.status()
        print(json.dumps(status, indent=2))
        return 0 if status["running"] else 1
    elif args.verb == "env":
        for key, value in cluster.env().items():
            print(f"export {key}={shlex.quote(value)}")
    return 0
