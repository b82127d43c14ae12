"""`tenantflow dev-cluster build|images|up|down|status|env`: the local control plane."""

from __future__ import annotations

import json
import shlex

import click

from tenantflow.cli.common import FLOAT, Choice, Command, Group
from tenantflow.cli.exits import Exit


@click.group("dev-cluster", cls=Group, help="run a local control plane built from Go modules")
def dev_cluster() -> None:
    pass


# imported in each verb: the dev tooling is not in the operator and sandbox images, whose
# entry point is this same CLI
@dev_cluster.command("build", cls=Command, help="build and cache the control-plane binaries")
def build() -> None:
    from tenantflow.testing.devcluster import binaries

    click.echo(binaries.ensure_binaries())


@dev_cluster.command(
    "images", cls=Command, help="build the operator, sandbox and pause images (OCI archives)"
)
def images() -> None:
    from tenantflow.testing.devcluster import images as built

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
    from tenantflow.testing.devcluster import DevCluster

    with_node = None if node in (None, "auto") else node == "real"
    click.echo(DevCluster().up(timeout=timeout, with_node=with_node))


@dev_cluster.command(
    "down", cls=Command, help="stop the processes `up` started and delete the data dir"
)
def down() -> None:
    from tenantflow.testing.devcluster import DevCluster

    if not DevCluster().down():
        click.echo("no dev cluster to stop")


@dev_cluster.command(
    "status", cls=Command, help="show component liveness and API readiness as JSON"
)
def status() -> None:
    from tenantflow.testing.devcluster import DevCluster

    found = DevCluster().status()
    click.echo(json.dumps(found, indent=2))
    if not found["running"]:
        click.get_current_context().exit(Exit.FAILED)


@dev_cluster.command(
    "env", cls=Command, help="print `export` lines; use: eval $(tenantflow dev-cluster env)"
)
def env() -> None:
    from tenantflow.testing.devcluster import DevCluster

    for key, value in DevCluster().env().items():
        click.echo(f"export {key}={shlex.quote(value)}")
