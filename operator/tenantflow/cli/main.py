"""Entry point: parse arguments, dispatch to a sub-command, turn our errors into messages."""

from __future__ import annotations

import argparse
import sys

from tenantflow import __version__
from tenantflow.cli import (
    devcluster_cmd,
    history_cmds,
    instance_actions,
    operator_cmd,
    reset_cmds,
    rollout_cmds,
    schedule_cmds,
    ui_cmd,
    workflow_cmds,
)
from tenantflow.errors import TenantflowError
from tenantflow.observability.logging import configure


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tenantflow", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tenantflow {__version__}")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    workflow_cmds.add_common(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    devcluster_cmd.register(sub)
    operator_cmd.register(sub)
    workflow_cmds.register(sub)
    instance_actions.register(sub)
    rollout_cmds.register(sub)
    reset_cmds.register(sub)
    schedule_cmds.register(sub)
    history_cmds.register(sub)
    ui_cmd.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except TenantflowError as exc:
        print(f"tenantflow: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
