"""`tenantflow pause|resume|terminate`: one instance, or many selected (cli/batch.py)."""

from __future__ import annotations

import argparse
from typing import Any

from tenantflow.cli import batch
from tenantflow.cli.workflow_cmds import Subparsers, add_verb
from tenantflow.kube import instances
from tenantflow.kube.client import Kube

HELP = {
    "pause": "pause after the running step (spec.suspend=true)",
    "resume": "resume a paused instance (spec.suspend=false)",
    "terminate": "end an instance as Terminated",
}


def register(sub: Subparsers) -> None:
    for name in instances.SPEC_ACTIONS:
        add_verb(sub, name, HELP[name], _spec_verb(name), batch.add_target_args)


def _spec_verb(name: str) -> Any:
    async def run(kube: Kube, args: argparse.Namespace) -> Any:
        async def one(inst: dict[str, Any]) -> str:
            meta = inst["metadata"]
            await instances.set_spec(kube, meta["namespace"], meta["name"], name)
            return f"workflowinstance/{meta['name']} {name}d"

        return await batch.act(kube, args, name, one)

    return run
