"""`tenantflow archive` and the log lines of `tenantflow logs`: a tenant's history, read
through the API server (issue 34).

The history lives in the tenant's own store, served read-only by its sandbox's runner on
the `history` port of the `sandbox` Service; the CLI reads it through the API server's
service proxy (`services/sandbox:history/proxy`), so the API server decides who may
read it with the tenant's own RBAC (the tenant's roles grant exactly that proxy) — the
CLI holds no key and asks nothing the user could not ask with `kubectl get --raw`.
"""

from __future__ import annotations

import argparse
from typing import Any

from tenantflow.cli.workflow_cmds import CliError, Subparsers, add_verb, table
from tenantflow.kube import history
from tenantflow.kube.client import ApiException, Kube
from tenantflow.vocabulary import API_VERSION, HISTORY_PROXY, INSTANCE


def register(sub: Subparsers) -> None:
    add_verb(
        sub,
        "logs",
        "an instance's log lines (env.log, by step), Kubernetes Events and step errors",
        _logs,
        _logs_args,
    )
    add_verb(
        sub,
        "archive",
        "finished instances kept in the tenant's history (filter by phase, definition, -l)",
        _history,
        _args,
    )


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--phase", help="Complete, Errored or Terminated")
    p.add_argument("--definition", help="the WorkflowDefinition's name")
    p.add_argument(
        "-l",
        "--selector",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an attribute (the instance's own labels), repeatable",
    )
    p.add_argument("--limit", type=int, default=50)


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


async def _history(kube: Kube, args: argparse.Namespace) -> Any:
    for given in args.selector:
        if "=" not in given:
            raise CliError(f"-l {given!r}: give an attribute as KEY=VALUE")
    query = [("limit", str(args.limit))]
    query += [(k, v) for k, v in (("phase", args.phase), ("definition", args.definition)) if v]
    query += [("attr", s) for s in args.selector]
    page = await read(kube, args.namespace, "/v1/instances", query)
    rows = [
        [
            i["name"],
            i["definition"],
            i["phase"],
            i["finishedAt"],
            ",".join(f"{k}={v}" for k, v in sorted(i["attributes"].items())),
        ]
        for i in page["items"]
    ]
    more = f"\n(more: --limit {args.limit * 2})" if page.get("next") else ""
    header = ["NAME", "DEFINITION", "PHASE", "FINISHED", "ATTRIBUTES"]
    return {"object": page, "table": table(header, rows) + more}


def _logs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("instance")
    p.add_argument("--step", help="only the lines of this step")


async def _logs(kube: Kube, args: argparse.Namespace) -> Any:
    """What happened to an instance, in time order: its Events and step errors (while it
    is an object), and the lines its code logged (from the tenant's history)."""
    inst = await kube.get(API_VERSION, INSTANCE, args.instance, args.namespace)
    uid = (
        inst["metadata"]["uid"]
        if inst is not None
        else await archived_uid(kube, args.namespace, args.instance)
    )
    events = [
        e
        for e in (await kube.list("v1", "Event", args.namespace) if inst is not None else [])
        if e["involvedObject"].get("uid") == uid
    ]
    lines = [
        f"{e.get('lastTimestamp') or e.get('eventTime')}  {e['type']:<7} "
        f"{e['reason']}: {e['message']}"
        for e in events
    ]
    for s in ((inst or {}).get("status") or {}).get("steps") or []:
        if s.get("error"):
            lines.append(
                f"{s.get('finishedAt') or s.get('startedAt')}  step {s['name']!r} "
                f"attempt {s.get('attempts')}: {s['error']['name']}: "
                f"{s['error'].get('message')}"
            )
    try:
        logged = await log_lines(kube, args.namespace, uid, args.step)
    except CliError as exc:  # the Events and errors are still worth showing
        if inst is None:
            raise
        logged = []
        lines.append(f"(its log lines are not shown: {exc})")
    for g in logged:
        where = f"{g['step']}#{g['attempt']}" if g["step"] else "run"
        fields = " ".join(f"{k}={v}" for k, v in g["fields"].items() if k != "ts")
        lines.append(f"{g['at']}  {g['level']:<7} [{where}] {g['message']} {fields}".rstrip())
    return {"object": {"events": events, "lines": logged}, "table": "\n".join(sorted(lines))}


async def log_lines(
    kube: Kube, namespace: str, uid: str, step: str | None = None
) -> list[dict[str, Any]]:
    """An instance's log lines from its tenant's history (oldest first)."""
    query = [("step", step)] if step else []
    return list((await read(kube, namespace, f"/v1/logs/{uid}", query))["lines"])


async def archived_uid(kube: Kube, namespace: str, name: str) -> str:
    """The uid of the newest archived instance of that name (its object is gone)."""
    found = (await read(kube, namespace, f"/v1/instances/{name}"))["instance"]
    if found is None:
        raise CliError(
            f"WorkflowInstance {namespace}/{name} not found, live or in the tenant's history"
        )
    return str(found["uid"])
