"""`tenantflow rollout status|promote|abort DEFINITION`: watch and steer a canary rollout.

Commands reach the operator as an annotation stamped with a fresh id (never the Git-owned
spec, so a GitOps sync neither shows drift nor undoes them); the operator applies each id
once and records it in status.rollout.lastCommand, which is how the CLI knows it landed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from tenantflow.cli.workflow_cmds import WFD, CliError, Subparsers, add_verb
from tenantflow.kube.client import Kube
from tenantflow.lifecycle import rollout
from tenantflow.vocabulary import API_VERSION, RolloutPhase

APPLIED_WAIT = 15.0  # seconds the CLI waits to see its command applied
FAILED = {RolloutPhase.ROLLED_BACK, RolloutPhase.ABORTED}


def register(sub: Subparsers) -> None:
    add_verb(sub, "rollout", "status, promote or abort a definition's rollout", _rollout, _args)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("status", "promote", "abort"))
    p.add_argument("definition")
    p.add_argument("--full", action="store_true", help="promote: to stable at once")
    p.add_argument(
        "--wait",
        action="store_true",
        help="status: until the rollout ends (exit 1 when it is rolled back or aborted)",
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits")


async def _rollout(kube: Kube, args: argparse.Namespace) -> Any:
    if args.action == "status":
        return await _status(kube, args)
    state = await _current(kube, args)
    if args.action == "abort" and state.phase not in rollout.HOLDING:
        raise CliError(
            f"the rollout of revision {state.revision} is {state.phase}: only one that is "
            "Progressing or Paused can be aborted"
        )
    if args.action == "promote" and state.phase in (
        RolloutPhase.PROMOTED,
        RolloutPhase.SUPERSEDED,
    ):
        raise CliError(f"the rollout of revision {state.revision} is {state.phase} already")
    action = rollout.ABORT if args.action == "abort" else rollout.PROMOTE
    if args.action == "promote" and args.full:
        action = rollout.PROMOTE_FULL
    command = rollout.Command(action, state.revision, uuid.uuid4().hex[:16])
    await kube.patch(
        API_VERSION,
        WFD,
        args.definition,
        args.namespace,
        {"metadata": {"annotations": {rollout.COMMAND_ANNOTATION: command.annotation()}}},
    )
    deadline = time.monotonic() + APPLIED_WAIT
    while time.monotonic() < deadline:
        state = await _current(kube, args)
        if state.last_command == command.id:
            return f"workflowdefinition/{args.definition}: {_describe(state)}"
        await asyncio.sleep(0.5)
    return (
        f"workflowdefinition/{args.definition}: {action} of revision {command.revision} "
        f"requested (annotation {rollout.COMMAND_ANNOTATION}); the operator has not applied "
        f"it within {APPLIED_WAIT:.0f} s: is it running?"
    )


async def _current(kube: Kube, args: argparse.Namespace) -> rollout.RolloutState:
    wfd = await kube.get(API_VERSION, WFD, args.definition, args.namespace)
    if wfd is None:
        raise CliError(f"WorkflowDefinition {args.namespace}/{args.definition} does not exist")
    state = rollout.RolloutState.of((wfd.get("status") or {}).get("rollout"))
    if state is None:
        raise CliError(
            f"WorkflowDefinition {args.definition} has no rollout: set spec.rollout, and each "
            "new revision is rolled out as a canary"
        )
    return state


async def _status(kube: Kube, args: argparse.Namespace) -> Any:
    deadline = time.monotonic() + args.timeout
    while True:
        wfd = await kube.get(API_VERSION, WFD, args.definition, args.namespace)
        if wfd is None:
            raise CliError(f"WorkflowDefinition {args.namespace}/{args.definition} does not exist")
        status = wfd.get("status") or {}
        state = rollout.RolloutState.of(status.get("rollout"))
        if not args.wait or (state is not None and state.phase not in rollout.HOLDING):
            break
        if time.monotonic() > deadline:
            raise CliError(f"the rollout did not end within {args.timeout:.0f} s: {state}")
        await asyncio.sleep(1)
    if args.wait and state is not None and state.phase in FAILED:
        raise CliError(f"rollout of revision {state.revision}: {state.message}")
    lines = [
        f"Definition:  {args.namespace}/{args.definition}",
        f"Active:      {status.get('activeRevision')}",
        f"Stable:      {status.get('stableRevision')}",
    ]
    if state is None:
        lines.append("Rollout:     none (spec.rollout is not set, or no revision is new)")
    else:
        lines += [
            f"Rollout:     {_describe(state)}",
            f"Outcomes:    {state.complete} complete, {state.errored} errored",
            f"Message:     {state.message}",
        ]
    return {"object": status.get("rollout"), "table": "\n".join(lines)}


def _describe(state: rollout.RolloutState) -> str:
    return (
        f"revision {state.revision} (from {state.from_revision}) {state.phase}, "
        f"{state.weight}% of new instances"
    )
