"""`tenantflow-dev-cluster build|images|up|down|status|env`: the local control plane.

The development package's own command (dev/pyproject.toml): the shipped `tenantflow` CLI
does not know it, as the runtime never imports tenantflow_dev.
"""

from __future__ import annotations

import json
import shlex
import sys

import click

from tenantflow.cli.common import FLOAT, Choice, Command, Group
from tenantflow.cli.exits import Exit
from tenantflow.observability.logging import configure
from tenantflow_dev.devcluster import DevCluster, binaries
from tenantflow_dev.devcluster import images as built

PROG = "tenantflow-dev-cluster"


@click.group(
    PROG,
    cls=Group,
    help="run a local control plane built from Go modules",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
def dev_cluster() -> None:
    pass


@dev_cluster.command("build", cls=Command, help="build and cache the control-plane binaries")
def build() -> None:
    click.echo(binaries.ensure_binaries())


@dev_cluster.command(
    "images", cls=Command, help="build the operator, sandbox and pause images (OCI archives)"
)
def images() -> None:
    for image in built.build():
        click.echo(f"{image.ref}\t{image.size / 2**20:.1f} MiB\t{image.archive}")


@dev_cluster.command(
    "up", cls=Command, help="start (or reuse) the cluster and wait until it is ready"
)
@click.option("--timeout", type=FLOAT, default=180.0, help="seconds to wait for readiness")
@click.option(
    "--node",
    type=Choice(("auto", "real", "none")),
    default=None,
    help="a real kubelet node that runs pods (default: $TENANTFLOW_NODE, else auto)",
)
def up(timeout: float, node: str | None) -> None:
    with_node = None if node in (None, "auto") else node == "real"
    click.echo(DevCluster().up(timeout=timeout, with_node=with_node))


@dev_cluster.command(
    "down", cls=Command, help="stop the processes `up` started and delete the data dir"
)
def down() -> None:
    if not DevCluster().down():
        click.echo("no dev cluster to stop")


@dev_cluster.command(
    "status", cls=Command, help="show component liveness and API readiness as JSON"
)
def status() -> None:
    found = DevCluster().status()
    click.echo(json.dumps(found, indent=2))
    if not found["running"]:
        click.get_current_context().exit(Exit.FAILED)


@dev_cluster.command(
    "env", cls=Command, help="print `export` lines; use: eval $(tenantflow-dev-cluster env)"
)
def env() -> None:
    for key, value in DevCluster().env().items():
        click.echo(f"export {key}={shlex.quote(value)}")


def main(argv: list[str] | None = None) -> int:
    """Run the dev CLI; its exit code (tenantflow's, cli/exits.py)."""
    configure()
    try:
        dev_cluster.main(args=sys.argv[1:] if argv is None else argv, prog_name=PROG)
    except SystemExit as exc:  # how click ends, with the exit code
        return exc.code if isinstance(exc.code, int) else Exit.FAILED
    return Exit.OK


if __name__ == "__main__":
    sys.exit(main())
