"""Workflow verbs: run, status, history, send-event, restart, revisions, diff, rollback,
top (the SPEC's CLI contract). Each returns its data and the text view of it (cli/common.py
prints them); `run --wait` and `status --watch` exit with the code of the phase the
instance ended in (cli/exits.py)."""

from __future__ import annotations

import asyncio
import difflib
import time
from typing import Any

import click

from tenantflow.cli import exits
from tenantflow.cli.common import (
    FLOAT,
    INT,
    CliError,
    Env,
    Output,
    TimedOut,
    json_arg,
    one_of,
    verb,
)
from tenantflow.cli.history_cmds import live_or_archived
from tenantflow.cli.text import columns, status_text, table
from tenantflow.engine.loader import SINGLE_MODULE
from tenantflow.kube import instances
from tenantflow.kube import revisions as stored
from tenantflow.lifecycle.source import Code
from tenantflow.ui import rows
from tenantflow.vocabulary import (
    API_VERSION,
    DEFINITION,
    FINISHED,
    INSTANCE,
    ROLLBACK_ANNOTATION,
    TENANT,
    Phase,
)

POLL = 1.0  # seconds between two reads of an instance --wait follows


def status_view(inst: dict[str, Any]) -> Output:
    """An instance's status; a finished one's exit code is its phase's."""
    phase = (inst.get("status") or {}).get("phase")
    if phase not in FINISHED:
        return Output(inst, status_text(inst))
    code = exits.of_phase(phase)
    note = "" if code == exits.Exit.OK else f"{inst['metadata']['name']} ended {phase}"
    return Output(inst, status_text(inst), code, note)


def _status_view(inst: dict[str, Any]) -> dict[str, Any]:
    """The status view as a dict (object and table), as the engine's tests read it."""
    return {"object": inst, "table": status_text(inst)}


# ---------------------------------------------------------------------- instance verbs
@verb(
    "run",
    "start a WorkflowInstance of a definition (--wait: until it finishes, exiting with "
    "its phase's code)",
    click.argument("definition"),
    click.option("--params", help="JSON, or @file.json"),
    click.option("--name", help="instance name (default: generated)"),
    click.option(
        "--event",
        metavar="TYPE",
        help="start with this event in its inbox; if --name exists and runs, send it instead",
    ),
    click.option("--event-payload", help="the event's payload: JSON, or @file.json"),
    click.option("--wait", is_flag=True, help="wait until it finishes"),
    click.option("--timeout", type=FLOAT, default=3600, help="seconds --wait waits"),
)
async def run(
    env: Env,
    definition: str,
    params: str | None = None,
    name: str | None = None,
    event: str | None = None,
    event_payload: str | None = None,
    wait: bool = False,
    timeout: float = 3600,
) -> Output | None:
    meta: dict[str, Any] = {"namespace": env.namespace}
    meta |= {"name": name} if name else {"generateName": f"{definition}-"}
    body = {
        "apiVersion": API_VERSION,
        "kind": INSTANCE,
        "metadata": meta,
        "spec": {"workflowRef": {"name": definition}, "params": json_arg(params, "--params")},
    }
    if event:  # signal-with-start: in its inbox from the first moment, or sent
        payload = json_arg(event_payload, "--event-payload")
        instance, new = await instances.start_with_event(env.kube, body, event, payload)
        done = "created with" if new else "exists: sent it"
        env.say(f"workflowinstance/{instance} {done} event {event!r}")
    else:
        instance = (await env.kube.create(body))["metadata"]["name"]
        env.say(f"workflowinstance/{instance} created")
    if not wait:
        return None
    return status_view(await follow(env, instance, timeout))


async def follow(env: Env, instance: str, timeout: float) -> dict[str, Any]:
    """Say steps as they are journaled and phase changes, until the instance finishes;
    the finished instance."""
    deadline = time.monotonic() + timeout
    shown, phase = 0, None
    while time.monotonic() < deadline:
        inst = await instances.get(env.kube, env.namespace, instance)
        st = inst.get("status") or {}
        steps = st.get("steps") or []
        for s in steps[shown:]:
            env.say(f"  step {s['name']:<20} {s['kind']:<6} {s['state']}")
        shown = len(steps)
        if rows.instance_row(inst)["phase"] != phase:
            phase = rows.instance_row(inst)["phase"]
            env.say(f"  phase {phase}")
        if phase in FINISHED:
            return inst
        await asyncio.sleep(POLL)
    raise TimedOut(f"{instance} did not finish within {timeout:.0f}s")


@verb(
    "status",
    "show an instance's phase, wait, output or error (--watch: until it finishes, exiting "
    "with its phase's code)",
    click.argument("instance"),
    click.option("-w", "--watch", is_flag=True, help="follow until it finishes"),
    click.option("--timeout", type=FLOAT, default=3600, help="seconds --watch follows"),
)
async def status(env: Env, instance: str, watch: bool = False, timeout: float = 3600) -> Output:
    if watch:
        return status_view(await follow(env, instance, timeout))
    inst, archived = await live_or_archived(env, instance)
    where = "\n(archived: read from the tenant's history)" if archived else ""
    return Output(inst, status_text(inst) + where)  # a read: its exit code is not the phase's


@verb("history", "show an instance's journal (status.steps)", click.argument("instance"))
async def history(env: Env, instance: str) -> Output:
    steps = ((await live_or_archived(env, instance))[0].get("status") or {}).get("steps") or []
    shown = [
        ("STEP", "name"),
        ("KIND", "kind"),
        ("STATE", "state"),
        ("ATTEMPTS", "attempts"),
        ("STARTED", "startedAt"),
        ("FINISHED", "finishedAt"),
        ("ERROR", "error"),
    ]
    return Output(steps, columns([rows.step_row(s) for s in steps], shown))


@verb(
    "send-event",
    "append an event to an instance's inbox (spec.events)",
    click.argument("instance"),
    click.argument("type"),
    click.option("--payload", help="JSON, or @file.json"),
)
async def send_event(env: Env, instance: str, type: str, payload: str | None = None) -> Output:
    data = json_arg(payload, "--payload")
    n = await instances.send_event(env.kube, env.namespace, instance, type, data)
    return Output.said(f"event {type!r} sent to {instance} (#{n})")


@verb(
    "restart",
    "run an instance again from the beginning (same spec)",
    click.argument("instance"),
)
async def restart(env: Env, instance: str) -> Output:
    await instances.restart(env.kube, env.namespace, instance)
    return Output.said(f"workflowinstance/{instance} restarted")


# ---------------------------------------------------------------------- definition verbs
async def _revisions(env: Env, definition: str) -> list[dict[str, Any]]:
    revs = await stored.list_revisions(env.kube, env.namespace, definition)
    if not revs:
        raise CliError(
            f"no revisions for WorkflowDefinition {env.namespace}/"
            f"{definition} (does it exist, and is it Ready?)"
        )
    return revs


@verb(
    "revisions",
    "list a definition's immutable revisions",
    click.argument("definition"),
)
async def list_revisions(env: Env, definition: str) -> Output:
    revs = await _revisions(env, definition)
    wfd = await env.kube.get(API_VERSION, DEFINITION, definition, env.namespace) or {}
    active = (wfd.get("status") or {}).get("activeRevision")
    shown = [
        {**row, "sha256": row["sha256"][:12], "active": "*" if row["active"] else ""}
        for row in (rows.revision_row(r, active) for r in revs)
    ]
    header = [("REVISION", "revision"), ("SHA256", "sha256"), ("CREATED", "createdAt")]
    return Output(
        [{"revision": r["revision"], **r["data"]} for r in revs],
        columns(shown, [*header, ("ACTIVE", "active")]),
    )


@verb(
    "diff",
    "unified diffs between two revisions' files",
    click.argument("definition"),
    click.argument("a", type=INT),
    click.argument("b", type=INT),
)
async def diff(env: Env, definition: str, a: int, b: int) -> Output:
    by_number = {r["revision"]: r for r in await _revisions(env, definition)}
    for n in (a, b):
        if n not in by_number:
            raise CliError(f"revision {n} does not exist; known: {sorted(by_number)}")
    old, new = (Code.from_revision(by_number[n]["data"]) for n in (a, b))
    return Output.said(code_diff(old, new, f"{definition}@{a}", f"{definition}@{b}"))


def code_diff(a: Code, b: Code, label_a: str, label_b: str) -> str:
    """One unified diff per file that differs (added and removed files against nothing);
    a changed main module is said first."""
    out = [f"main module: {a.main} -> {b.main}\n"] if a.main != b.main else []
    single = a.files.keys() == b.files.keys() == {f"{SINGLE_MODULE}.py"}  # label as before
    for file in sorted(set(a.files) | set(b.files)):
        old, new = a.files.get(file), b.files.get(file)
        if old == new:
            continue
        out.extend(
            difflib.unified_diff(
                (old or "").splitlines(keepends=True),
                (new or "").splitlines(keepends=True),
                (label_a if single else f"{label_a}/{file}") if old is not None else "/dev/null",
                (label_b if single else f"{label_b}/{file}") if new is not None else "/dev/null",
            )
        )
    return "".join(out).rstrip("\n")


@verb(
    "rollback",
    "make new instances run an earlier revision (or --clear it)",
    click.argument("definition"),
    click.option("--to", type=INT, help="revision new instances should run"),
    click.option("--clear", is_flag=True, help="back to the newest revision"),
    check=one_of("to", "clear"),
)
async def rollback(env: Env, definition: str, to: int | None = None, clear: bool = False) -> Output:
    """Recorded in an annotation, not in spec.pinnedRevision: the spec belongs to whoever
    applies it (Git), and a sync would undo a rollback written there."""
    if not clear:
        numbers = [r["revision"] for r in await _revisions(env, definition)]
        if to not in numbers:
            raise CliError(f"revision {to} does not exist; known: {numbers}")
    value = None if clear else str(to)
    await env.kube.patch(
        API_VERSION,
        DEFINITION,
        definition,
        env.namespace,
        {"metadata": {"annotations": {ROLLBACK_ANNOTATION: value}}},
    )
    if clear:
        return Output.said(
            f"workflowdefinition/{definition}: rollback cleared, the newest revision runs"
        )
    return Output.said(
        f"workflowdefinition/{definition} rolled back to revision {to} (annotation "
        f"{ROLLBACK_ANNOTATION}; spec.pinnedRevision overrides it); running instances keep "
        "their revision"
    )


TOP_PHASES = [p for p in Phase if p != Phase.TERMINATED]


@verb("top", "instances per tenant and phase")
async def top(env: Env) -> Output:
    shown: list[list[Any]] = []
    for tenant in await env.kube.list(API_VERSION, TENANT):
        row = rows.tenant_row(tenant)
        ns = (tenant.get("status") or {}).get("namespace")  # none yet: no instances yet
        found = await env.kube.list(API_VERSION, INSTANCE, ns) if ns else []
        counts = rows.phase_counts(rows.instance_row(i) for i in found)
        shown.append([row["name"], row["phase"], *(counts.get(p, 0) for p in TOP_PHASES)])
    header = ["TENANT", "PHASE", *(p.upper() for p in TOP_PHASES)]
    return Output(shown, table(header, shown))
