"""tenantflow: isolated, durable, per-tenant workflows on Kubernetes.

The kube options (--kubeconfig, --context, -n/--namespace, --tenant) and -o/--output go
before the verb or after it, as kubectl's do.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from tenantflow import __version__
from tenantflow.cli import (  # noqa: F401  (their verbs register with common.verb)
    exits,
    history_cmds,
    instance_actions,
    migrate_cmd,
    query_cmds,
    reset_cmds,
    rollout_cmds,
    schedule_cmds,
    workflow_cmds,
)
from tenantflow.cli.common import COMMANDS, KUBE_OPTIONS, OUTPUT_OPTION, Group, Target, with_options
from tenantflow.cli.exits import Exit
from tenantflow.cli.operator_cmd import operator
from tenantflow.cli.typescript_cmd import typescript_init
from tenantflow.cli.ui_cmd import ui
from tenantflow.observability.logging import configure

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(
    "tenantflow",
    cls=Group,
    help=f"{__doc__}\n{exits.HELP}",
    context_settings=CONTEXT,
)
@click.version_option(
    __version__, "--version", prog_name="tenantflow", message="%(prog)s %(version)s"
)
@with_options(*KUBE_OPTIONS, OUTPUT_OPTION)
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    ctx.obj = Target().given(**options)


for command in [*COMMANDS, operator, ui, typescript_init]:
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; its exit code (cli/exits.py)."""
    configure()
    try:
        cli.main(args=sys.argv[1:] if argv is None else argv, prog_name="tenantflow")
    except SystemExit as exc:  # how click ends, with the exit code
        return exc.code if isinstance(exc.code, int) else Exit.FAILED
    return Exit.OK


if __name__ == "__main__":
    sys.exit(main())
