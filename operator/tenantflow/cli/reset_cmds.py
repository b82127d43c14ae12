"""`tenantflow reset INSTANCE --to-step NAME [--revision N]` and `tenantflow retry
INSTANCE`: continue an instance from a step, or an Errored one from its failure.

The request reaches the operator as an annotation stamped with a fresh id and the user's
Kubernetes name (from a SelfSubjectReview: the API server says who we are); the operator
applies each id once and records it in status.resets, which is how the CLI knows it
landed. RBAC decides: patching the instance is the permission it takes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import click

from tenantflow.cli import batch
from tenantflow.cli.common import INT, CliError, Env, Output, verb
from tenantflow.kube.client import ApiException, Kube
from tenantflow.kube.identity import user_info
from tenantflow.kube.revisions import list_revisions
from tenantflow.lifecycle.reset import ResetRequest
from tenantflow.vocabulary import API_VERSION, INSTANCE, RESET_ANNOTATION

APPLIED_WAIT = 15.0  # seconds the CLI waits to see its request applied
REASON = click.option("--reason", default="", help="why: kept in status.resets and the Event")


@verb(
    "reset",
    "continue an instance from a step (the journal is cut before it)",
    *batch.target_params(revision_flag="--running-revision"),
    REASON,
    click.option("--to-step", required=True, help="the step to run again from"),
    click.option("--revision", type=INT, help="continue on this revision (the fix)"),
)
async def reset(
    env: Env, to_step: str, revision: int | None = None, reason: str = "", **selection: Any
) -> Output:
    return await _request(env, batch.Selection.of(selection), to_step, revision, reason)


@verb(
    "retry",
    "run an Errored instance again from its failed step",
    *batch.target_params(),
    REASON,
)
async def retry(env: Env, reason: str = "", **selection: Any) -> Output:
    return await _request(env, batch.Selection.of(selection), None, None, reason)


async def _request(
    env: Env, sel: batch.Selection, to_step: str | None, revision: int | None, reason: str
) -> Output:
    by = await _me(env.kube)

    async def one(inst: dict[str, Any]) -> str:
        return await _one(env.kube, inst, to_step, revision, reason, by, wait=bool(sel.instance))

    return await batch.act(env, sel, "reset" if to_step else "retry", one)


async def _one(
    kube: Kube,
    inst: dict[str, Any],
    to_step: str | None,
    revision: int | None,
    reason: str,
    by: str,
    *,
    wait: bool,
) -> str:
    """Ask for one instance; with `wait`, until the operator says it applied or refused."""
    name, namespace = inst["metadata"]["name"], inst["metadata"]["namespace"]
    if revision is not None:
        workflow = inst["spec"]["workflowRef"]["name"]
        found = await list_revisions(kube, namespace, workflow, revision)
        if not found:
            raise CliError(f"revision {revision} of {workflow} does not exist")
    request = ResetRequest(uuid.uuid4().hex[:16], to_step, revision, reason, by)
    await kube.patch(
        API_VERSION,
        INSTANCE,
        name,
        namespace,
        {"metadata": {"annotations": {RESET_ANNOTATION: request.annotation()}}},
    )
    deadline = time.monotonic() + (APPLIED_WAIT if wait else 0)
    while time.monotonic() < deadline:
        inst = await kube.get(API_VERSION, INSTANCE, name, namespace) or {}
        done = [r for r in (inst.get("status") or {}).get("resets") or [] if r["id"] == request.id]
        if done:
            if done[0].get("refused"):
                raise CliError(f"refused: {done[0]['refused']}")
            return (
                f"workflowinstance/{name}: {done[0]['stepsCut']} journal entries "
                f"cut, running again from {done[0].get('toStep') or 'where it failed'} on "
                f"revision {done[0]['toRevision']}"
            )
        await asyncio.sleep(0.5)
    if not wait:
        return f"workflowinstance/{name}: requested"
    return (
        f"workflowinstance/{name}: requested (annotation {RESET_ANNOTATION}); the "
        f"operator has not applied it within {APPLIED_WAIT:.0f} s: is it running?"
    )


async def _me(kube: Kube) -> str:
    """The user the API server knows us as (empty if it will not say)."""
    try:
        return str((await user_info(kube)).get("username") or "")
    except ApiException:
        return ""
