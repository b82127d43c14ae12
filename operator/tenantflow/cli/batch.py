"""Acting on one instance or on many: `tenantflow terminate|pause|resume|reset|retry`
take an instance name, or a selection (`-l SELECTOR`, `--definition`, `--revision`,
`--phase`) with a dry run, a confirmation, progress on a terminal and a summary of what
failed. Every action is the user's own API call: RBAC decides, one instance at a time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from tenantflow.cli.workflow_cmds import WFI, CliError
from tenantflow.kube.client import ApiException, Kube, message
from tenantflow.vocabulary import API_VERSION, Phase

Action = Callable[[dict[str, Any]], Awaitable[str]]  # one instance -> what was done


def add_target_args(p: argparse.ArgumentParser, *, revision_flag: str = "--revision") -> None:
    """`revision_flag`: `reset` keeps `--revision` for the revision to continue on."""
    p.add_argument("instance", nargs="?", help="one instance (or select several below)")
    p.add_argument("-l", "--selector", help="label selector, as kubectl's")
    p.add_argument("--definition", help="instances of this WorkflowDefinition")
    p.add_argument(revision_flag, dest="of_revision", type=int, help="...running this revision")
    p.add_argument("--phase", choices=[str(ph) for ph in Phase], help="...in this phase")
    p.add_argument("--dry-run", action="store_true", help="print what would be acted on")
    p.add_argument("--yes", action="store_true", help="no confirmation for several")


def _selecting(args: argparse.Namespace) -> bool:
    return any(
        getattr(args, k) is not None for k in ("selector", "definition", "of_revision", "phase")
    )


async def targets(kube: Kube, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The instances the arguments name: the one given, or those the filters select."""
    if args.instance and _selecting(args):
        raise CliError("name one instance, or select with -l/--definition/--revision/--phase")
    if args.instance:
        inst = await kube.get(API_VERSION, WFI, args.instance, args.namespace)
        if inst is None:
            raise CliError(f"WorkflowInstance {args.namespace}/{args.instance} not found")
        return [inst]
    if not _selecting(args):
        raise CliError(
            "name an instance, or select several with -l SELECTOR, --definition NAME, "
            "--revision N or --phase PHASE"
        )
    found = await kube.list(API_VERSION, WFI, args.namespace, args.selector)
    return [
        i
        for i in found
        if (args.definition is None or i["spec"]["workflowRef"]["name"] == args.definition)
        and (
            args.of_revision is None or (i.get("status") or {}).get("revision") == args.of_revision
        )
        and (args.phase is None or (i.get("status") or {}).get("phase") == args.phase)
    ]


async def act(kube: Kube, args: argparse.Namespace, verb: str, action: Action) -> str:
    """Run `action` on every target: one instance as before; several after a dry run or
    a confirmation, with progress and a summary (exit 1 if any failed)."""
    chosen = await targets(kube, args)
    if args.instance:
        return await action(chosen[0])
    names = [i["metadata"]["name"] for i in chosen]
    if not names:
        return f"no instance in {args.namespace} matches: nothing to {verb}"
    if args.dry_run:
        return f"would {verb} {len(names)} instances in {args.namespace}:\n" + "\n".join(names)
    if not args.yes and not _confirmed(f"{verb} {len(names)} instances in {args.namespace}?"):
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
        if sys.stderr.isatty():
            print(f"\r{verb}: {n}/{len(chosen)}", end="", file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    done = f"{verb}: {len(chosen) - len(failed)} of {len(chosen)} done"
    if failed:
        raise CliError(f"{done}; {len(failed)} failed:\n" + "\n".join(failed))
    return done


def _confirmed(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
