"""`tenantflow schedules [list|pause|resume|runs] [NAME]`: see and steer WorkflowSchedules.

Pause and resume set `spec.suspend`, as `kubectl patch cronjob` does: with GitOps, Git
owns the spec, so pause there (a sync would undo a CLI pause, and says so as drift).
"""

from __future__ import annotations

import datetime as dt

import click

from tenantflow.api.crd import kind_named
from tenantflow.cli.common import Choice, CliError, Env, Output, verb
from tenantflow.cli.text import printer_table, table
from tenantflow.ui import rows
from tenantflow.vocabulary import (
    API_VERSION,
    INSTANCE,
    SCHEDULE,
    SCHEDULE_LABEL,
    SCHEDULED_AT_ANNOTATION,
)


@verb(
    "schedules",
    "list, pause or resume WorkflowSchedules, or list runs",
    click.argument(
        "action",
        required=False,
        default="list",
        metavar="[ACTION]",
        type=Choice(("list", "pause", "resume", "runs")),
    ),
    click.argument("name", required=False),
)
async def schedules(env: Env, action: str = "list", name: str | None = None) -> Output:
    if action == "list":
        return await _list(env)
    if not name:
        raise CliError(f"tenantflow schedules {action} needs the schedule's name")
    body = await env.kube.get(API_VERSION, SCHEDULE, name, env.namespace)
    if body is None:
        raise CliError(f"WorkflowSchedule {env.namespace}/{name} does not exist")
    if action == "runs":
        return await _runs(env, name)
    suspend = action == "pause"
    await env.kube.patch(API_VERSION, SCHEDULE, name, env.namespace, {"spec": {"suspend": suspend}})
    return Output.said(f"workflowschedule/{name} {'paused' if suspend else 'resumed'}")


async def _list(env: Env) -> Output:
    items = await env.kube.list(API_VERSION, SCHEDULE, env.namespace)
    now = dt.datetime.now(dt.UTC)
    return Output(items, printer_table(kind_named(SCHEDULE), items, now))


async def _runs(env: Env, name: str) -> Output:
    items = await env.kube.list(
        API_VERSION, INSTANCE, env.namespace, label_selector=f"{SCHEDULE_LABEL}={name}"
    )
    items.sort(key=lambda i: i["metadata"]["name"])
    shown = [
        [
            row["name"],
            (i["metadata"].get("annotations") or {}).get(SCHEDULED_AT_ANNOTATION),
            row["phase"],
            row["finished"],
        ]
        for i, row in ((i, rows.instance_row(i)) for i in items)
    ]
    return Output(items, table(["RUN", "SCHEDULED", "PHASE", "FINISHED"], shown))
