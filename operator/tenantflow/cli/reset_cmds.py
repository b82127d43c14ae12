"""`tenantflow reset INSTANCE --to-step NAME [--revision N]` and `tenantflow retry
INSTANCE`: continue an instance from a step, or an Errored one from its failure.

The request reaches the operator as an annotation stamped with a fresh id and the user's
Kubernetes name (from a SelfSubjectReview: the API server says who we are); the operator
applies each id once and records it in status.resets, which is how the CLI knows it
landed. RBAC decides: patching the instance is the permission it takes.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from tenantflow.cli import batch
from tenantflow.cli.workflow_cmds import WFI, CliError, Subparsers, add_verb
from tenantflow.kube.client import ApiException, Kube
from tenantflow.kube.identity import user_info
from tenantflow.kube.revisions import list_revisions
from tenantflow.lifecycle.reset import RESET_ANNOTATION, ResetRequest
from tenantflow.vocabulary import API_VERSION

APPLIED_WAIT = 15.0  # seconds the CLI waits to see its request applied


def register(sub: Subparsers) -> None:
    add_verb(
        sub,
        "reset",
        "continue an instance from a step (the journal is cut before it)",
        _reset,
        _reset_args,
    )
    add_verb(sub, "retry", "run an Errored instance again from its failed step", _retry, _args)


def _args(p: argparse.ArgumentParser, revision_flag: str = "--revision") -> None:
    batch.add_target_args(p, revision_flag=revision_flag)
    p.add_argument("--reason", default="", help="why: kept in status.resets and the Event")


def _reset_args(p: argparse.ArgumentParser) -> None:
    _args(p, revision_flag="--running-revision")
    p.add_argument("--to-step", required=True, help="the step to run again from")
    p.add_argument("--revision", type=int, help="continue on this revision (the fix)")


async def _reset(kube: Kube, args: argparse.Namespace) -> Any:
    return await _request(kube, args, args.to_step, args.revision)


async def _retry(kube: Kube, args: argparse.Namespace) -> Any:
    return await _request(kube, args, None, None)


async def _request(
    kube: Kube, args: argparse.Namespace, to_step: str | None, revision: int | None
) -> Any:
    by = await _me(kube)

    async def one(inst: dict[str, Any]) -> str:
        return await _one(kube, inst, to_step, revision, args.reason, by, wait=bool(args.instance))

    return await batch.act(kube, args, "reset" if to_step else "retry", one)


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
        WFI,
        name,
        namespace,
        {"metadata": {"annotations": {RESET_ANNOTATION: request.annotation()}}},
    )
    deadline = time.monotonic() + (APPLIED_WAIT if wait else 0)
    while time.monotonic() < deadline:
        inst = await kube.get(API_VERSION, WFI, name, namespace) or {}
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
