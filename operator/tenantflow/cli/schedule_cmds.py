"""`tenantflow schedules [list|pause|resume|runs] [NAME]`: see and steer WorkflowSchedules.

Pause and resume set `spec.suspend`, as `kubectl patch cronjob` does: with GitOps, Git
owns the spec, so pause there (a sync would undo a CLI pause, and says so as drift).
"""

from __future__ import annotations

import argparse
from typing import Any

from tenantflow.cli.workflow_cmds import CliError, Subparsers, add_verb, table
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
    rows = []
    for s in items:
        spec, st = s.get("spec") or {}, s.get("status") or {}
        rows.append(
            [
                s["metadata"]["name"],
                spec.get("schedule"),
                spec.get("timeZone", "UTC"),
                (spec.get("workflowRef") or {}).get("name"),
                spec.get("overlapPolicy", "Skip"),
                "yes" if spec.get("suspend") else "no",
                st.get("lastScheduleTime"),
                (st.get("nextRunTimes") or [None])[0],
                st.get("activeCount", 0),
            ]
        )
    header = ["NAME", "SCHEDULE", "TIMEZONE", "WORKFLOW", "OVERLAP", "PAUSED", "LAST", "NEXT"]
    return {"object": items, "table": table([*header, "ACTIVE"], rows)}


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
