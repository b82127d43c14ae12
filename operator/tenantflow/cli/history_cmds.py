"""`tenantflow archive` and the log lines of `tenantflow logs`: a tenant's history, read
through the API server (issue 34).

The history lives in the tenant's own store, served read-only by its sandbox's runner on
the `history` port of the `sandbox` Service; the CLI reads it through the API server's
service proxy (`services/sandbox:history/proxy`), so the API server decides who may
read it with the tenant's own RBAC (the tenant's roles grant exactly that proxy) — the
CLI holds no key and asks nothing the user could not ask with `kubectl get --raw`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import click

from tenantflow.cli.common import INT, CliError, Env, Output, verb
from tenantflow.cli.text import table
from tenantflow.kube import history
from tenantflow.kube import instances as live
from tenantflow.kube.client import ApiException, Kube
from tenantflow.ui import rows
from tenantflow.vocabulary import (
    API_VERSION,
    FINISHED,
    HISTORY_PROXY,
    INSTANCE,
    INSTANCES_PAGE,
    WORKFLOW_REF_FIELD,
)

FOLLOW_POLL = 1.0  # seconds between two reads of `logs -f`


async def read(
    kube: Kube, namespace: str, path: str, query: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """One GET of the tenant's history API; what the API server refused, said plainly."""
    try:
        return await history.read(kube, namespace, path, query)
    except ApiException as exc:
        if exc.status in (503, 404):
            raise CliError(
                f"the history of {namespace} cannot be read now ({exc.status}): is its "
                f"sandbox running? (kubectl -n {namespace} get pods)"
            ) from None
        if exc.status == 403:
            raise CliError(
                f"you may not read the history of {namespace}: it takes the tenant's "
                f"viewer or editor role (get services/{HISTORY_PROXY[0]}/proxy)"
            ) from None
        raise


async def live_or_archived(env: Env, name: str) -> tuple[dict[str, Any], bool]:
    """The instance as an object, else as its tenant's history kept it (the same shape:
    metadata, spec, status) and True; a user need not know where it lives now."""
    try:
        return await live.get(env.kube, env.namespace, name), False
    except live.InstanceNotFound as gone:
        try:
            found = (await read(env.kube, env.namespace, f"/v1/instances/{name}"))["instance"]
        except CliError as unreadable:
            raise CliError(f"{gone} (nor read from the tenant's history: {unreadable})") from None
        if found is None:
            raise CliError(f"{gone}, live or in the tenant's history") from None
        return dict(found["record"]), True


def archive_row(item: dict[str, Any]) -> list[Any]:
    """One archived instance of the history API's list."""
    attributes = ",".join(f"{k}={v}" for k, v in sorted(item["attributes"].items()))
    return [item["name"], item["definition"], item["phase"], item["finishedAt"], attributes]


def filters(phases: str) -> tuple[Any, ...]:
    """The filters `archive` and `list` share (`phases`: which phases --phase takes)."""
    return (
        click.option("--phase", help=phases),
        click.option("--definition", help="the WorkflowDefinition's name"),
        click.option(
            "-l",
            "--selector",
            multiple=True,
            metavar="KEY=VALUE",
            help="a search attribute (the instance's labels), repeatable",
        ),
        click.option("--limit", type=INT, default=50, help="archived instances shown at most"),
    )


def history_query(
    phase: str | None, definition: str | None, selector: tuple[str, ...], limit: int
) -> list[tuple[str, str]]:
    """The history API's query for those filters."""
    query = [("limit", str(limit))]
    query += [(k, v) for k, v in (("phase", phase), ("definition", definition)) if v]
    return query + [("attr", f"{k}={v}") for k, v in selected(selector).items()]


@verb(
    "archive",
    "finished instances kept in the tenant's history (filter by phase, definition, -l)",
    *filters("Complete, Errored or Terminated"),
)
async def archive(
    env: Env,
    phase: str | None = None,
    definition: str | None = None,
    selector: tuple[str, ...] = (),
    limit: int = INSTANCES_PAGE,
) -> Output:
    query = history_query(phase, definition, selector, limit)
    page = await read(env.kube, env.namespace, "/v1/instances", query)
    more = f"\n(more: --limit {limit * 2})" if page.get("next") else ""
    header = ["NAME", "DEFINITION", "PHASE", "FINISHED", "ATTRIBUTES"]
    return Output(page, table(header, [archive_row(i) for i in page["items"]]) + more)


def selected(selector: tuple[str, ...]) -> dict[str, str]:
    """-l KEY=VALUE options as attributes (a label selector's equality terms)."""
    for given in selector:
        if "=" not in given:
            raise CliError(f"-l {given!r}: give an attribute as KEY=VALUE")
    return dict(given.split("=", 1) for given in selector)


@verb(
    "list",
    "instances, live and archived, newest first (filter by phase, definition, -l)",
    *filters("Queued, Running, Waiting, Paused, Complete, Errored, Terminated"),
)
async def list_instances(
    env: Env,
    phase: str | None = None,
    definition: str | None = None,
    selector: tuple[str, ...] = (),
    limit: int = INSTANCES_PAGE,
) -> Output:
    """Live instances (the API server filters: labels, selectable fields) beside those
    only the tenant's history still holds (its index filters): one list, each row saying
    where it lives. An unreadable history is said, and the live ones still shown."""
    attributes = selected(selector)
    fields = [f"{WORKFLOW_REF_FIELD}={definition}"] if definition else []
    fields += [f"status.phase={phase}"] if phase else []
    objects = await env.kube.list(
        API_VERSION,
        INSTANCE,
        env.namespace,
        label_selector=",".join(f"{k}={v}" for k, v in attributes.items()) or None,
        field_selector=",".join(fields) or None,
    )
    shown = [{**rows.instance_row(o), "where": "live"} for o in objects]
    names, note = {r["name"] for r in shown}, ""
    query = history_query(phase, definition, selector, limit)
    try:
        page = await read(env.kube, env.namespace, "/v1/instances", query)
    except CliError as exc:
        page, note = {"items": []}, f"(archived instances not shown: {exc})"
    shown += [
        {**rows.archived_row(env.namespace, i), "where": "archived"}
        for i in page["items"]
        if i["name"] not in names  # archived and not deleted yet: the object is the truth
    ]
    shown.sort(key=lambda r: str(r.get("created") or ""), reverse=True)
    header = ["NAME", "DEFINITION", "PHASE", "CREATED", "FINISHED", "WHERE"]
    body = [
        [r["name"], r["definition"], r["phase"], r["created"], r.get("finished") or "", r["where"]]
        for r in shown
    ]
    return Output(shown, table(header, body) + (f"\n{note}" if note else ""))


@verb(
    "logs",
    "an instance's log lines (env.log, print, subprocess output, by step), Kubernetes "
    "Events and step errors",
    click.argument("instance"),
    click.option("--step", help="only the lines of this step"),
    click.option("--attempt", type=INT, help="only the lines of this attempt (of --step)"),
    click.option(
        "-f",
        "--follow",
        is_flag=True,
        help="print the lines as they are written, until the instance ends",
    ),
)
async def logs(
    env: Env,
    instance: str,
    step: str | None = None,
    attempt: int | None = None,
    follow: bool = False,
) -> Output | None:
    """What happened to an instance, in time order: its Events and step errors (while it
    is an object), and the lines its code logged (from the tenant's history)."""
    if follow:
        await follow_logs(env, instance, step, attempt)
        return None
    kube, namespace = env.kube, env.namespace
    inst, uid = await object_and_uid(kube, namespace, instance)
    events = [
        e
        for e in (await kube.list("v1", "Event", namespace) if inst is not None else [])
        if e["involvedObject"].get("uid") == uid
    ]
    lines = [
        f"{ev['time']}  {ev['type']:<7} {ev['reason']}: {ev['message']}"
        for ev in (rows.kube_event(e) for e in events)
    ]
    for s in ((inst or {}).get("status") or {}).get("steps") or []:
        if s.get("error") and step in (None, s["name"]):
            lines.append(
                f"{s.get('finishedAt') or s.get('startedAt')}  step {s['name']!r} "
                f"attempt {s.get('attempts')}: {s['error']['name']}: "
                f"{s['error'].get('message')}"
            )
    try:
        logged = await log_lines(kube, namespace, uid, step, attempt)
    except CliError as exc:  # the Events and errors are still worth showing
        if inst is None:
            raise
        logged = []
        lines.append(f"(its log lines are not shown: {exc})")
    lines += [line_text(g) for g in logged]
    return Output({"events": events, "lines": logged}, "\n".join(sorted(lines)))


def line_text(line: dict[str, Any]) -> str:
    """One logged line as `logs` prints it: time, level, [step#attempt], message, fields."""
    where = f"{line['step']}#{line['attempt']}" if line["step"] else "run"
    fields = " ".join(f"{k}={v}" for k, v in line["fields"].items() if k != "ts")
    return f"{line['at']}  {line['level']:<7} [{where}] {line['message']} {fields}".rstrip()


async def follow_logs(env: Env, instance: str, step: str | None, attempt: int | None) -> int:
    """Print an instance's lines as its tenant's history gets them (every FOLLOW_POLL),
    oldest first, each once; return the count once the instance has ended and its last
    lines are read (a finished instance writes none: its last advance wrote them before
    the operator recorded the end)."""
    kube, namespace = env.kube, env.namespace
    after, printed = 0, 0
    while True:
        inst, uid = await object_and_uid(kube, namespace, instance)
        ended = inst is None or ((inst.get("status") or {}).get("phase") in FINISHED)
        async for page in log_pages(kube, namespace, uid, step, attempt, after):
            for line in page:
                env.out(line_text(line))
                after, printed = line["seq"], printed + 1
        if ended:
            return printed
        await asyncio.sleep(FOLLOW_POLL)


async def log_lines(
    kube: Kube,
    namespace: str,
    uid: str,
    step: str | None = None,
    attempt: int | None = None,
) -> list[dict[str, Any]]:
    """An instance's log lines from its tenant's history (oldest first), every page."""
    return [line async for page in log_pages(kube, namespace, uid, step, attempt) for line in page]


async def log_pages(
    kube: Kube,
    namespace: str,
    uid: str,
    step: str | None = None,
    attempt: int | None = None,
    after: int = 0,
) -> AsyncIterator[list[dict[str, Any]]]:
    """The lines after `after` (a line's `seq`), history.LOG_PAGE at a time, until none are left."""
    while True:
        query = [("after", str(after)), ("limit", str(history.LOG_PAGE))]
        query += [("step", step)] if step else []
        query += [("attempt", str(attempt))] if attempt is not None else []
        page = list((await read(kube, namespace, f"/v1/logs/{uid}", query))["lines"])
        if not page:
            return
        yield page
        if len(page) < history.LOG_PAGE:
            return
        after = page[-1]["seq"]


async def object_and_uid(
    kube: Kube, namespace: str, name: str
) -> tuple[dict[str, Any] | None, str]:
    """The instance's object (None once it is archived) and its uid either way."""
    inst = await kube.get(API_VERSION, INSTANCE, name, namespace)
    uid = inst["metadata"]["uid"] if inst is not None else await archived_uid(kube, namespace, name)
    return inst, uid


async def archived_uid(kube: Kube, namespace: str, name: str) -> str:
    """The uid of the newest archived instance of that name (its object is gone)."""
    found = (await read(kube, namespace, f"/v1/instances/{name}"))["instance"]
    if found is None:
        raise CliError(
            f"WorkflowInstance {namespace}/{name} not found, live or in the tenant's history"
        )
    return str(found["uid"])
