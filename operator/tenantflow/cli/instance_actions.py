"""`tenantflow pause|resume|terminate`: one instance, or many selected (cli/batch.py)."""

from __future__ import annotations

from typing import Any

from tenantflow.cli import batch
from tenantflow.cli.common import Env, Output, Verb, verb
from tenantflow.kube import instances

HELP = {
    "pause": "pause after the running step (spec.suspend=true)",
    "resume": "resume a paused instance (spec.suspend=false)",
    "terminate": "end an instance as Terminated",
}


def _spec_verb(name: str) -> Verb:
    async def run(env: Env, **params: Any) -> Output:
        async def one(inst: dict[str, Any]) -> str:
            meta = inst["metadata"]
            await instances.set_spec(env.kube, meta["namespace"], meta["name"], name)
            return f"workflowinstance/{meta['name']} {name}d"

        return await batch.act(env, batch.Selection.of(params), name, one)

    return run


for _name in instances.SPEC_ACTIONS:
    verb(_name, HELP[_name], *batch.target_params())(_spec_verb(_name))
