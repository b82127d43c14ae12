"""`tenantflow rollout status|promote|abort DEFINITION`: watch and steer a canary rollout.

Commands reach the operator as an annotation stamped with a fresh id (never the Git-owned
spec, so a GitOps sync neither shows drift nor undoes them); the operator applies each id
once and records it in status.rollout.lastCommand, which is how the CLI knows it landed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import click

from tenantflow.cli.common import FLOAT, Choice, CliError, Env, Output, TimedOut, verb
from tenantflow.lifecycle import rollout
from tenantflow.vocabulary import API_VERSION, DEFINITION, ROLLOUT_COMMAND_ANNOTATION, RolloutPhase

APPLIED_WAIT = 15.0  # seconds the CLI waits to see its command applied
FAILED = {RolloutPhase.ROLLED_BACK, RolloutPhase.ABORTED}
POLL = 1.0  # seconds between two reads of a definition --wait follows


@verb(
    "rollout",
    "status, promote or abort a definition's rollout",
    click.argument("action", metavar="ACTION", type=Choice(("status", "promote", "abort"))),
    click.argument("definition"),
    click.option("--full", is_flag=True, help="promote: to stable at once"),
    click.option(
        "--wait",
        is_flag=True,
        help="status: until the rollout ends (exit 1 when it is rolled back or aborted)",
    ),
    click.option("--timeout", type=FLOAT, default=600.0, help="seconds --wait waits"),
)
async def rollout_verb(
    env: Env,
    action: str,
    definition: str,
    full: bool = False,
    wait: bool = False,
    timeout: float = 600.0,
) -> Output:
    if action == "status":
        return await status(env, definition, wait, timeout)
    state = await _current(env, definition)
    if action == "abort" and state.phase not in rollout.HOLDING:
        raise CliError(
            f"the rollout of revision {state.revision} is {state.phase}: only one that is "
            "Progressing or Paused can be aborted"
        )
    if action == "promote" and state.phase in (RolloutPhase.PROMOTED, RolloutPhase.SUPERSEDED):
        raise CliError(f"the rollout of revision {state.revision} is {state.phase} already")
    command_action = rollout.ABORT if action == "abort" else rollout.PROMOTE
    if action == "promote" and full:
        command_action = rollout.PROMOTE_FULL
    command = rollout.Command(command_action, state.revision, uuid.uuid4().hex[:16])
    await env.kube.patch(
        API_VERSION,
        DEFINITION,
        definition,
        env.namespace,
        {"metadata": {"annotations": {ROLLOUT_COMMAND_ANNOTATION: command.annotation()}}},
    )
    deadline = time.monotonic() + APPLIED_WAIT
    while time.monotonic() < deadline:
        state = await _current(env, definition)
        if state.last_command == command.id:
            return Output.said(f"workflowdefinition/{definition}: {_describe(state)}")
        await asyncio.sleep(0.5)
    return Output.said(
        f"workflowdefinition/{definition}: {command_action} of revision {command.revision} "
        f"requested (annotation {ROLLOUT_COMMAND_ANNOTATION}); the operator has not applied "
        f"it within {APPLIED_WAIT:.0f} s: is it running?"
    )


async def _definition(env: Env, definition: str) -> dict[str, Any]:
    wfd = await env.kube.get(API_VERSION, DEFINITION, definition, env.namespace)
    if wfd is None:
        raise CliError(f"WorkflowDefinition {env.namespace}/{definition} does not exist")
    return wfd


async def _current(env: Env, definition: str) -> rollout.RolloutState:
    wfd = await _definition(env, definition)
    state = rollout.RolloutState.of((wfd.get("status") or {}).get("rollout"))
    if state is None:
        raise CliError(
            f"WorkflowDefinition {definition} has no rollout: set spec.rollout, and each "
            "new revision is rolled out as a canary"
        )
    return state


async def status(env: Env, definition: str, wait: bool, timeout: float) -> Output:
    """Where the rollout stands; with `wait`, once it has ended (exit 1 when it was
    rolled back or aborted, 4 when `timeout` ran out first)."""
    deadline = time.monotonic() + timeout
    while True:
        st = (await _definition(env, definition)).get("status") or {}
        state = rollout.RolloutState.of(st.get("rollout"))
        if not wait or (state is not None and state.phase not in rollout.HOLDING):
            break
        if time.monotonic() > deadline:
            raise TimedOut(f"the rollout did not end within {timeout:.0f} s: {state}")
        await asyncio.sleep(POLL)
    if wait and state is not None and state.phase in FAILED:
        raise CliError(f"rollout of revision {state.revision}: {state.message}")
    lines = [
        f"Definition:  {env.namespace}/{definition}",
        f"Active:      {st.get('activeRevision')}",
        f"Stable:      {st.get('stableRevision')}",
    ]
    if state is None:
        lines.append("Rollout:     none (spec.rollout is not set, or no revision is new)")
    else:
        lines += [
            f"Rollout:     {_describe(state)}",
            f"Outcomes:    {state.complete} complete, {state.errored} errored",
            f"Message:     {state.message}",
        ]
    return Output(st.get("rollout"), "\n".join(lines))


def _describe(state: rollout.RolloutState) -> str:
    return (
        f"revision {state.revision} (from {state.from_revision}) {state.phase}, "
        f"{state.weight}% of new instances"
    )
