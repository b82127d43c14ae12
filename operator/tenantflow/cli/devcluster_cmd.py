"""`tenantflow dev-cluster build|images|up|down|status|env`: the local control plane."""

from __future__ import annotations

import argparse
import json
import shlex


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dev-cluster", help="run a local control plane built from Go modules")
    verbs = p.add_subparsers(dest="verb", required=True)
    verbs.add_parser("build", help="build and cache the control-plane binaries")
    verbs.add_parser("images", help="build the operator, sandbox and pause images (OCI archives)")
    up = verbs.add_parser("up", help="start (or reuse) the cluster and wait until it is ready")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for readiness")
    up.add_argument(
        "--node",
        choices=("auto", "real", "none"),
        default=None,
        help="a real kubelet node that runs pods (default: $TENANTFLOW_NODE, else auto)",
    )
    verbs.add_parser("down", help="stop the processes `up` started and delete the data dir")
    verbs.add_parser("status", help="show component liveness and API readiness as JSON")
    verbs.add_parser("env", help="print `export` lines; use: eval $(tenantflow dev-cluster env)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported here: the dev tooling is not in the operator and sandbox images, whose
    # entry point is this same CLI
    from tenantflow.testing.devcluster import DevCluster, binaries, images

    cluster = DevCluster()
    if args.verb == "build":
        print(binaries.ensure_binaries())
    elif args.verb == "images":
        for image in images.build():
            print(f"{image.ref}\t{image.size / 2**20:.1f} MiB\t{image.archive}")
    elif args.verb == "up":
        with_node = None if args.node in (None, "auto") else args.node == "real"
        print(cluster.up(timeout=args.timeout, with_node=with_node))
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
