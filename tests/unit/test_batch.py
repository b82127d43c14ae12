"""Batch actions of the CLI against the in-memory API: selection by label, definition,
revision and phase; dry run; no action on many without a confirmation; a summary naming
what failed."""

from __future__ import annotations

from typing import Any, cast

import click
import pytest

from tenantflow.cli import batch
from tenantflow.cli.common import CliError, Env, with_options
from tenantflow.kube.client import Kube
from tenantflow.vocabulary import API_VERSION, INSTANCE
from tenantflow_dev.fake_kube import FakeKube

pytestmark = pytest.mark.unit
NS = "tenant-acme"


def api() -> Kube:
    kube = FakeKube()
    for name, workflow, revision, phase, team in [
        ("a1", "ci", 1, "Errored", "web"),
        ("a2", "ci", 2, "Errored", "web"),
        ("a3", "ci", 2, "Complete", "api"),
        ("b1", "deploy", 2, "Errored", "web"),
    ]:
        kube.put(
            {
                "apiVersion": API_VERSION,
                "kind": INSTANCE,
                "metadata": {"name": name, "namespace": NS, "labels": {"team": team}},
                "spec": {"workflowRef": {"name": workflow}},
                "status": {"revision": revision, "phase": phase},
            }
        )
    return cast(Kube, kube)


@click.command()
@with_options(*batch.target_params())
def selecting(**params: Any) -> None:
    pass


def args(*argv: str) -> batch.Selection:
    """The selection these arguments make, parsed as the CLI parses them."""
    return batch.Selection.of(dict(selecting.make_context("t", list(argv)).params))


async def names(*argv: str) -> list[str]:
    return sorted(i["metadata"]["name"] for i in await batch.targets(Env(api(), NS), args(*argv)))


async def test_selection_by_definition_revision_phase_and_label() -> None:
    assert await names("--definition", "ci", "--phase", "Errored") == ["a1", "a2"]
    assert await names("--definition", "ci", "--revision", "2") == ["a2", "a3"]
    assert await names("-l", "team=web", "--phase", "Errored") == ["a1", "a2", "b1"]
    assert await names("a3") == ["a3"]
    with pytest.raises(CliError, match="name an instance, or select several"):
        await names()
    with pytest.raises(CliError, match="name one instance, or select"):
        await names("a1", "--definition", "ci")


async def test_dry_run_confirmation_and_a_summary_of_failures() -> None:
    kube, done = Env(api(), NS), []

    async def action(inst: dict[str, Any]) -> str:
        if inst["metadata"]["name"] == "a2":
            raise CliError("refused: not allowed")
        done.append(inst["metadata"]["name"])
        return "ok"

    dry = await batch.act(kube, args("--definition", "ci", "--dry-run"), "terminate", action)
    assert dry.text.startswith("would terminate 3 instances") and not done
    with pytest.raises(CliError, match="not confirmed: add --yes"):
        await batch.act(kube, args("--definition", "ci"), "terminate", action)  # no terminal
    assert not done
    with pytest.raises(CliError, match=r"2 of 3 done; 1 failed:\na2: refused: not allowed"):
        await batch.act(kube, args("--definition", "ci", "--yes"), "terminate", action)
    assert done == ["a1", "a3"]
    none = await batch.act(kube, args("--phase", "Paused", "--yes"), "terminate", action)
    assert none.text.startswith("no instance")
