"""`tenantflow pause|resume|terminate`: one instance, or many selected (cli/batch.py)."""

from __future__ import annotations

from typing import Any

import click

from tenantflow.cli import batch
from tenantflow.cli.common import Env, Output, Verb, verb
from tenantflow.kube import instances

HELP = {
    "pause": "pause after the running step (spec.suspend=true)",
    "resume": "resume a paused instance (spec.suspend=false)",
    "terminate": "end an instance as Terminated (--rollback: its rollbacks run first)",
}


def _spec_verb(name: str) -> Verb:
    async def run(env: Env, **params: Any) -> Output:
        async def one(inst: dict[str, Any]) -> str:
            meta = inst["metadata"]
            await instances.set_spec(env.kube, meta["namespace"], meta["name"], name)
            return f"workflowinstance/{meta['name']} {name}d"

        return await batch.act(env, batch.Selection.of(params), name, one)

    return run


async def _terminate(env: Env, rollback: bool = False, **params: Any) -> Output:
    async def one(inst: dict[str, Any]) -> str:
        meta = inst["metadata"]
        await instances.terminate(env.kube, meta["namespace"], meta["name"], rollback=rollback)
        then = " (rolling back its completed steps first)" if rollback else ""
        return f"workflowinstance/{meta['name']} terminated{then}"

    return await batch.act(env, batch.Selection.of(params), "terminate", one)


for _name in instances.SPEC_ACTIONS:
    if _name != "terminate":
        verb(_name, HELP[_name], *batch.target_params())(_spec_verb(_name))
verb(
    "terminate",
    HELP["terminate"],
    *batch.target_params(),
    click.option(
        "--rollback",
        is_flag=True,
        help="run the rollbacks of its completed steps first, newest first (phase "
        "Compensating), then end it Terminated",
    ),
)(_terminate)
