"""Acting on one instance or on many: `tenantflow terminate|pause|resume|reset|retry`
take an instance name, or a selection (`-l SELECTOR`, `--definition`, `--revision`,
`--phase`) with a dry run, a confirmation, progress on a terminal and a summary of what
failed. Every action is the user's own API call: RBAC decides, one instance at a time.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import click

from tenantflow.cli.common import INT, Choice, CliError, Env, Output
from tenantflow.kube.client import ApiException, message
from tenantflow.vocabulary import API_VERSION, INSTANCE, Phase

Action = Callable[[dict[str, Any]], Awaitable[str]]  # one instance -> what was done


def target_params(*, revision_flag: str = "--revision") -> tuple[Callable[[Any], Any], ...]:
    """`revision_flag`: `reset` keeps `--revision` for the revision to continue on."""
    return (
        click.argument("instance", required=False),
        click.option("-l", "--selector", help="label selector, as kubectl's"),
        click.option("--definition", help="instances of this WorkflowDefinition"),
        click.option(revision_flag, "of_revision", type=INT, help="...running this revision"),
        click.option("--phase", type=Choice([str(ph) for ph in Phase]), help="...in this phase"),
        click.option("--dry-run", is_flag=True, help="print what would be acted on"),
        click.option("--yes", is_flag=True, help="no confirmation for several"),
    )


@dataclass(frozen=True)
class Selection:
    """One instance by name, or those the filters select."""

    instance: str | None = None
    selector: str | None = None
    definition: str | None = None
    of_revision: int | None = None
    phase: str | None = None
    dry_run: bool = False
    yes: bool = False

    @classmethod
    def of(cls, params: dict[str, Any]) -> Selection:
        """The selection among a verb's parameters (taken out of them)."""
        return cls(**{k: params.pop(k) for k in cls.__dataclass_fields__ if k in params})

    @property
    def selecting(self) -> bool:
        return any(
            v is not None for v in (self.selector, self.definition, self.of_revision, self.phase)
        )


async def targets(env: Env, sel: Selection) -> list[dict[str, Any]]:
    """The instances the arguments name: the one given, or those the filters select."""
    if sel.instance and sel.selecting:
        raise CliError("name one instance, or select with -l/--definition/--revision/--phase")
    if sel.instance:
        inst = await env.kube.get(API_VERSION, INSTANCE, sel.instance, env.namespace)
        if inst is None:
            raise CliError(f"WorkflowInstance {env.namespace}/{sel.instance} not found")
        return [inst]
    if not sel.selecting:
        raise CliError(
            "name an instance, or select several with -l SELECTOR, --definition NAME, "
            "--revision N or --phase PHASE"
        )
    found = await env.kube.list(API_VERSION, INSTANCE, env.namespace, sel.selector)
    return [
        i
        for i in found
        if (sel.definition is None or i["spec"]["workflowRef"]["name"] == sel.definition)
        and (sel.of_revision is None or (i.get("status") or {}).get("revision") == sel.of_revision)
        and (sel.phase is None or (i.get("status") or {}).get("phase") == sel.phase)
    ]


async def act(env: Env, sel: Selection, verb: str, action: Action) -> Output:
    """Run `action` on every target: one instance as before; several after a dry run or
    a confirmation, with progress and a summary (exit 1 if any failed)."""
    chosen = await targets(env, sel)
    if sel.instance:
        return Output.said(await action(chosen[0]))
    names = [i["metadata"]["name"] for i in chosen]
    if not names:
        return Output.said(f"no instance in {env.namespace} matches: nothing to {verb}")
    if sel.dry_run:
        return Output.said(
            f"would {verb} {len(names)} instances in {env.namespace}:\n" + "\n".join(names)
        )
    if not sel.yes and not _confirmed(f"{verb} {len(names)} instances in {env.namespace}?"):
        raise CliError(
            f"{len(names)} instances selected and not confirmed: add --yes (or --dry-run "
            "to see them)"
        )
    failed: list[str] = []
    for n, inst in enumerate(chosen, 1):
        try:
            await action(inst)
        except (ApiException, CliError) as exc:
            text = message(exc) if isinstance(exc, ApiException) else str(exc)
            failed.append(f"{inst['metadata']['name']}: {text}")
        if env.tty:
            env.say(f"\r{verb}: {n}/{len(chosen)}")
    if env.tty:
        env.say("")
    done = f"{verb}: {len(chosen) - len(failed)} of {len(chosen)} done"
    if failed:
        raise CliError(f"{done}; {len(failed)} failed:\n" + "\n".join(failed))
    return Output.said(done)


def _confirmed(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return click.confirm(question, default=False, err=True)
