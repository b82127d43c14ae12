"""`tenantflow schedules [list|pause|resume|runs] [NAME]`: see and steer WorkflowSchedules.

Pause and resume set `spec.suspend`, as `kubectl patch cronjob` does: with GitOps, Git
owns the spec, so pause there (a sync would undo a CLI pause, and says so as drift).
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from tenantflow.api.crd import kind_named
from tenantflow.cli.workflow_cmds import CliError, Subparsers, add_verb, printer_table, table
from tenantflow.kube.client import Kube
from tenantflow.vocabulary import (
    API_VERSION,
    INSTANCE,
    SCHEDULE,
    SCHEDULE_LABEL,
    SCHEDULED_AT_ANNOTATION,
)


def register(sub: Subparsers) -> None:
    add_verb(sub, "schedules", "list, pause or resume WorkflowSchedules, or list runs", _run, _args)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", default="list", choices=("list", "pause", "resume", "runs"))
    p.add_argument("name", nargs="?", help="the schedule (pause, resume, runs)")


async def _run(kube: Kube, args: argparse.Namespace) -> Any:
    if args.action == "list":
        return await _list(kube, args.namespace)
    if not args.name:
        raise CliError(f"tenantflow schedules {args.action} needs the schedule's name")
    body = await kube.get(API_VERSION, SCHEDULE, args.name, args.namespace)
    if body is None:
        raise CliError(f"WorkflowSchedule {args.namespace}/{args.name} does not exist")
    if args.action == "runs":
        return await _runs(kube, args.namespace, args.name)
    suspend = args.action == "pause"
    await kube.patch(
        API_VERSION, SCHEDULE, args.name, args.namespace, {"spec": {"suspend": suspend}}
    )
    return f"workflowschedule/{args.name} {'paused' if suspend else 'resumed'}"


async def _list(kube: Kube, namespace: str) -> Any:
    items = await kube.list(API_VERSION, SCHEDULE, namespace)
    now = dt.datetime.now(dt.UTC)
    return {"object": items, "table": printer_table(kind_named(SCHEDULE), items, now)}


async def _runs(kube: Kube, namespace: str, name: str) -> Any:
    items = await kube.list(
        API_VERSION, INSTANCE, namespace, label_selector=f"{SCHEDULE_LABEL}={name}"
    )
    items.sort(key=lambda i: i["metadata"]["name"])
    rows = [
        [
            i["metadata"]["name"],
            (i["metadata"].get("annotations") or {}).get(SCHEDULED_AT_ANNOTATION),
            (i.get("status") or {}).get("phase"),
            (i.get("status") or {}).get("finishedAt"),
        ]
        for i in items
    ]
    return {"object": items, "table": table(["RUN", "SCHEDULED", "PHASE", "FINISHED"], rows)}
