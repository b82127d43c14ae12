"""`tenantflow pause|resume|terminate`: one instance, or many selected (cli/batch.py)."""

from __future__ import annotations

import argparse
from typing import Any

from tenantflow.cli import batch
from tenantflow.cli.workflow_cmds import WFI, Subparsers, add_verb
from tenantflow.kube.client import Kube
from tenantflow.vocabulary import API_VERSION

SPEC_VERBS = {
    "pause": ("pause after the running step (spec.suspend=true)", {"suspend": True}),
    "resume": ("resume a paused instance (spec.suspend=false)", {"suspend": False}),
    "terminate": ("end an instance as Terminated", {"terminate": True}),
}


def register(sub: Subparsers) -> None:
    for name, (help_text, patch) in SPEC_VERBS.items():
        add_verb(sub, name, help_text, _spec_verb(name, patch), batch.add_target_args)


def _spec_verb(name: str, patch: dict[str, Any]) -> Any:
    async def run(kube: Kube, args: argparse.Namespace) -> Any:
        async def one(inst: dict[str, Any]) -> str:
            meta = inst["metadata"]
            await kube.patch(API_VERSION, WFI, meta["name"], meta["namespace"], {"spec": patch})
            return f"workflowinstance/{meta['name']} {name}d"

        return await batch.act(kube, args, name, one)

    return run
