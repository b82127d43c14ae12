"""Workflow verbs: run, status, history, send-event, pause/resume/terminate/restart,
revisions, diff, rollback, logs, top (the SPEC's CLI contract)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import difflib
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeAlias

import yaml

from tenantflow import conditions
from tenantflow.api.crd import Kind
from tenantflow.durations import human_age, parse_time
from tenantflow.engine.loader import SINGLE_MODULE
from tenantflow.errors import TenantflowError
from tenantflow.kube import instances
from tenantflow.kube import revisions as stored
from tenantflow.kube.client import ApiException, Kube, message
from tenantflow.lifecycle.revisions import ROLLBACK_ANNOTATION
from tenantflow.lifecycle.source import Code
from tenantflow.vocabulary import (
    API_VERSION,
    DEFINITION,
    FINISHED,
    INSTANCE,
    ConditionType,
    Phase,
)

WFI, WFD = INSTANCE, DEFINITION


class CliError(TenantflowError):
    """A user-facing failure: the message says what to do."""


Verb = Callable[[Kube, argparse.Namespace], Awaitable[Any]]
VERBS: dict[str, tuple[str, Verb, Callable[[argparse.ArgumentParser], None]]] = {}


def verb(
    name: str,
    help: str,
    args: Callable[[argparse.ArgumentParser], None] = lambda p: None,
) -> Callable[[Verb], Verb]:
    def register(fn: Verb) -> Verb:
        VERBS[name] = (help, fn, args)
        return fn

    return register


def add_common(p: argparse.ArgumentParser, default: Any = None) -> None:
    """-n/--namespace and -o/--output, kubectl style (before or after the verb)."""
    p.add_argument("-n", "--namespace", default=default, help="namespace (default: the context's)")
    p.add_argument(
        "-o",
        "--output",
        choices=("table", "json", "yaml"),
        default="table" if default is None else default,
    )


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(sub: Subparsers) -> None:
    for name, (help_text, fn, add_args) in VERBS.items():
        add_verb(sub, name, help_text, fn, add_args)


def add_verb(
    sub: Subparsers,
    name: str,
    help_text: str,
    fn: Verb,
    add_args: Callable[[argparse.ArgumentParser], None],
) -> None:
    """One verb on the command line, run against the cluster with its output options."""
    p = sub.add_parser(name, help=help_text)
    add_common(p, default=argparse.SUPPRESS)  # also accepted before the verb
    add_args(p)
    p.set_defaults(func=lambda a, fn=fn: _run(fn, a))


def _run(fn: Verb, args: argparse.Namespace) -> int:
    async def main() -> Any:
        kube = await Kube.connect(args.kubeconfig, args.context)
        try:
            if not args.namespace:
                args.namespace = context_namespace(args)
            return await fn(kube, args)
        except ApiException as exc:
            raise CliError(message(exc)) from None
        finally:
            await kube.close()

    result = asyncio.run(main())
    if result is not None:
        _print(result, args.output)
    return 0


def context_namespace(args: argparse.Namespace) -> str:
    from kubernetes_asyncio.config.kube_config import KUBE_CONFIG_DEFAULT_LOCATION

    path = Path(args.kubeconfig or KUBE_CONFIG_DEFAULT_LOCATION).expanduser()
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except OSError:
        return "default"
    name = args.context or cfg.get("current-context")
    ctx: dict[str, Any] = next(
        (c["context"] for c in cfg.get("contexts", []) if c["name"] == name), {}
    )
    return str(ctx.get("namespace") or "default")


def _print(result: Any, output: str) -> None:
    if output == "json":
        print(
            json.dumps(
                result.get("object", result) if isinstance(result, dict) else result,
                indent=2,
                default=str,
            )
        )
    elif output == "yaml":
        print(
            yaml.safe_dump(
                result.get("object", result) if isinstance(result, dict) else result,
                sort_keys=False,
            ),
            end="",
        )
    else:
        print(result.get("table", "") if isinstance(result, dict) else result)


def table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header, *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


_JSON_PATH_STEP = re.compile(r"\.([A-Za-z0-9_]+)|\[([0-9]+)\]")


def printer_table(kind: Kind, items: list[dict[str, Any]], now: dt.datetime) -> str:
    """`kubectl get` of `kind`, from the CRD's additionalPrinterColumns (api/crd.py, their
    one home), so the CLI's table and kubectl's cannot disagree: the same columns, a
    missing value as `<none>`, a date as its age."""
    header = ["NAME", *(name.upper() for name, _, _ in kind.columns)]
    rows = [
        [
            item["metadata"]["name"],
            *(_cell(item, path, column_type, now) for _, column_type, path in kind.columns),
        ]
        for item in items
    ]
    return table(header, rows)


def _cell(item: dict[str, Any], path: str, column_type: str, now: dt.datetime) -> str:
    """One printer column's value; the JSONPath subset the columns use (`.a.b`, `[0]`)."""
    steps = list(_JSON_PATH_STEP.finditer(path))
    if "".join(m.group(0) for m in steps) != path:
        raise ValueError(f"printer column {path!r}: only .field and [index] are supported")
    value: Any = item
    for m in steps:
        if m.group(1) is not None:
            value = value.get(m.group(1)) if isinstance(value, dict) else None
        else:
            index = int(m.group(2))
            value = value[index] if isinstance(value, list) and index < len(value) else None
    if value is None:
        return "<none>"
    if column_type == "date":
        return human_age((now - parse_time(value)).total_seconds())
    if column_type == "boolean":
        return "true" if value else "false"
    return str(value)


def _json_arg(value: str | None, what: str) -> Any:
    if value is None:
        return None
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
    except OSError as exc:
        raise CliError(f"{what}: cannot read {value[1:]} ({exc.strerror})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"{what} is not valid JSON ({exc}); pass JSON or @file.json") from None


async def _instance(kube: Kube, args: argparse.Namespace) -> dict[str, Any]:
    return await instances.get(kube, args.namespace, args.instance)


def _status_view(inst: dict[str, Any]) -> dict[str, Any]:
    st = inst.get("status") or {}
    # a revision is pinned when the instance starts: a Queued one has none yet
    revision = f"revision {st['revision']}" if st.get("revision") else "(no revision yet)"
    lines = [
        f"Instance:  {inst['metadata']['namespace']}/{inst['metadata']['name']}",
        f"Workflow:  {inst['spec']['workflowRef']['name']} {revision}",
        f"Phase:     {st.get('phase', 'Pending')}",
    ]
    admitted = conditions.find(st.get("conditions"), ConditionType.ADMITTED)
    if admitted and admitted.get("status") == "False":
        lines.append(f"Queued:    {admitted.get('reason')}: {admitted.get('message')}")
    if st.get("waitingFor"):
        w = st["waitingFor"]
        lines.append(
            f"Waiting:   {w['kind']} {w.get('eventType') or ''} in step "
            f"{w.get('step')!r} until {w.get('until')}"
        )
    if st.get("error"):
        e = st["error"]
        lines.append(f"Error:     {e['name']}: {e.get('message')} (step {e.get('step')!r})")
        lines.extend(f"           {line}" for line in _traceback(st).splitlines())
    if "output" in st:
        lines.append(f"Output:    {json.dumps(st['output'])}")
    lines.append(f"Steps:     {st.get('stepCount', 0)}")
    return {"object": inst, "table": "\n".join(lines)}


def _traceback(st: dict[str, Any]) -> str:
    """The tenant code's traceback of an Errored instance: its own, or that of the step
    whose error ended it (the instance's error names the step, the step keeps the trace)."""
    error = st.get("error") or {}
    if error.get("traceback"):
        return str(error["traceback"])
    steps: list[dict[str, Any]] = st.get("steps") or []
    step = next((s for s in steps if s.get("name") == error.get("step")), {})
    return str((step.get("error") or {}).get("traceback") or "")


def _add_instance(p: argparse.ArgumentParser) -> None:
    p.add_argument("instance")


# ---------------------------------------------------------------------- instance verbs
def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("definition")
    p.add_argument("--params", help="JSON, or @file.json")
    p.add_argument("--name", help="instance name (default: generated)")
    p.add_argument(
        "--event",
        metavar="TYPE",
        help="start with this event in its inbox; if --name exists and runs, send it instead",
    )
    p.add_argument("--event-payload", help="the event's payload: JSON, or @file.json")
    p.add_argument("--wait", action="store_true", help="wait until it finishes")
    p.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits")


@verb("run", "start a WorkflowInstance of a definition", _add_run)
async def run(kube: Kube, args: argparse.Namespace) -> Any:
    meta: dict[str, Any] = {"namespace": args.namespace}
    meta |= {"name": args.name} if args.name else {"generateName": f"{args.definition}-"}
    body = {
        "apiVersion": API_VERSION,
        "kind": WFI,
        "metadata": meta,
        "spec": {
            "workflowRef": {"name": args.definition},
            "params": _json_arg(args.params, "--params"),
        },
    }
    if args.event:  # signal-with-start: in its inbox from the first moment, or sent
        payload = _json_arg(args.event_payload, "--event-payload")
        args.instance, new = await instances.start_with_event(kube, body, args.event, payload)
        done = "created with" if new else "exists: sent it"
        print(f"workflowinstance/{args.instance} {done} event {args.event!r}", file=sys.stderr)
    else:
        created = await kube.create(body)
        args.instance = created["metadata"]["name"]
        print(f"workflowinstance/{args.instance} created", file=sys.stderr)
    if not args.wait:
        return None
    return await _follow(kube, args)


async def _follow(kube: Kube, args: argparse.Namespace) -> Any:
    """Print steps as they are journaled and phase changes, until the instance finishes."""
    deadline = time.monotonic() + args.timeout
    shown, phase = 0, None
    while time.monotonic() < deadline:
        inst = await _instance(kube, args)
        st = inst.get("status") or {}
        steps = st.get("steps") or []
        for s in steps[shown:]:
            print(f"  step {s['name']:<20} {s['kind']:<6} {s['state']}", file=sys.stderr)
        shown = len(steps)
        if st.get("phase") != phase:
            phase = st.get("phase")
            print(f"  phase {phase}", file=sys.stderr)
        if phase in FINISHED:
            return _status_view(inst)
        await asyncio.sleep(1)
    raise CliError(f"{args.instance} did not finish within {args.timeout:.0f}s")


def _add_status(p: argparse.ArgumentParser) -> None:
    p.add_argument("instance")
    p.add_argument("-w", "--watch", action="store_true", help="follow until it finishes")
    p.add_argument("--timeout", type=float, default=3600, help="seconds --watch follows")


@verb("status", "show an instance's phase, wait, output or error", _add_status)
async def status(kube: Kube, args: argparse.Namespace) -> Any:
    if args.watch:
        return await _follow(kube, args)
    return _status_view(await _instance(kube, args))


@verb("history", "show an instance's journal (status.steps)", _add_instance)
async def history(kube: Kube, args: argparse.Namespace) -> Any:
    steps = ((await _instance(kube, args)).get("status") or {}).get("steps") or []
    rows = [
        [
            s["name"],
            s["kind"],
            s["state"],
            s.get("attempts"),
            s.get("startedAt"),
            s.get("finishedAt"),
            (s.get("error") or {}).get("name"),
        ]
        for s in steps
    ]
    return {
        "object": steps,
        "table": table(["STEP", "KIND", "STATE", "ATTEMPTS", "STARTED", "FINISHED", "ERROR"], rows),
    }


def _add_event(p: argparse.ArgumentParser) -> None:
    p.add_argument("instance")
    p.add_argument("type")
    p.add_argument("--payload", help="JSON, or @file.json")


@verb("send-event", "append an event to an instance's inbox (spec.events)", _add_event)
async def send_event(kube: Kube, args: argparse.Namespace) -> Any:
    payload = _json_arg(args.payload, "--payload")
    n = await instances.send_event(kube, args.namespace, args.instance, args.type, payload)
    return f"event {args.type!r} sent to {args.instance} (#{n})"


@verb("restart", "run an instance again from the beginning (same spec)", _add_instance)
async def restart(kube: Kube, args: argparse.Namespace) -> Any:
    await instances.restart(kube, args.namespace, args.instance)
    return f"workflowinstance/{args.instance} restarted"


# ---------------------------------------------------------------------- definition verbs
def _add_definition(p: argparse.ArgumentParser) -> None:
    p.add_argument("definition")


async def _revisions(kube: Kube, args: argparse.Namespace) -> list[dict[str, Any]]:
    revs = await stored.list_revisions(kube, args.namespace, args.definition)
    if not revs:
        raise CliError(
            f"no revisions for WorkflowDefinition {args.namespace}/"
            f"{args.definition} (does it exist, and is it Ready?)"
        )
    return revs


@verb("revisions", "list a definition's immutable revisions", _add_definition)
async def list_revisions(kube: Kube, args: argparse.Namespace) -> Any:
    revs = await _revisions(kube, args)
    wfd = await kube.get(API_VERSION, WFD, args.definition, args.namespace) or {}
    active = (wfd.get("status") or {}).get("activeRevision")
    rows = [
        [
            r["revision"],
            r["data"]["sha256"][:12],
            r["data"].get("createdAt"),
            "*" if r["revision"] == active else "",
        ]
        for r in revs
    ]
    return {
        "object": [{"revision": r["revision"], **r["data"]} for r in revs],
        "table": table(["REVISION", "SHA256", "CREATED", "ACTIVE"], rows),
    }


def _add_diff(p: argparse.ArgumentParser) -> None:
    p.add_argument("definition")
    p.add_argument("a", type=int)
    p.add_argument("b", type=int)


@verb("diff", "unified diffs between two revisions' files", _add_diff)
async def diff(kube: Kube, args: argparse.Namespace) -> Any:
    by_number = {r["revision"]: r for r in await _revisions(kube, args)}
    for n in (args.a, args.b):
        if n not in by_number:
            raise CliError(f"revision {n} does not exist; known: {sorted(by_number)}")
    a, b = (Code.from_revision(by_number[n]["data"]) for n in (args.a, args.b))
    return code_diff(a, b, f"{args.definition}@{args.a}", f"{args.definition}@{args.b}")


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


def _add_rollback(p: argparse.ArgumentParser) -> None:
    p.add_argument("definition")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--to", type=int, help="revision new instances should run")
    which.add_argument("--clear", action="store_true", help="back to the newest revision")


@verb("rollback", "make new instances run an earlier revision (or --clear it)", _add_rollback)
async def rollback(kube: Kube, args: argparse.Namespace) -> Any:
    """Recorded in an annotation, not in spec.pinnedRevision: the spec belongs to whoever
    applies it (Git), and a sync would undo a rollback written there."""
    if not args.clear:
        numbers = [r["revision"] for r in await _revisions(kube, args)]
        if args.to not in numbers:
            raise CliError(f"revision {args.to} does not exist; known: {numbers}")
    value = None if args.clear else str(args.to)
    await kube.patch(
        API_VERSION,
        WFD,
        args.definition,
        args.namespace,
        {"metadata": {"annotations": {ROLLBACK_ANNOTATION: value}}},
    )
    if args.clear:
        return f"workflowdefinition/{args.definition}: rollback cleared, the newest revision runs"
    return (
        f"workflowdefinition/{args.definition} rolled back to revision {args.to} (annotation "
        f"{ROLLBACK_ANNOTATION}; spec.pinnedRevision overrides it); running instances keep "
        "their revision"
    )


@verb("top", "instances per tenant and phase")
async def top(kube: Kube, args: argparse.Namespace) -> Any:
    rows = []
    for t in await kube.list(API_VERSION, "Tenant"):
        ns = (t.get("status") or {}).get("namespace")
        counts: dict[str, int] = {}
        for inst in await kube.list(API_VERSION, WFI, ns) if ns else []:
            phase = (inst.get("status") or {}).get("phase") or "Pending"
            counts[phase] = counts.get(phase, 0) + 1
        rows.append(
            [
                t["metadata"]["name"],
                (t.get("status") or {}).get("phase"),
                *(counts.get(p, 0) for p in Phase if p != Phase.TERMINATED),
            ]
        )
    return {
        "object": rows,
        "table": table(
            ["TENANT", "PHASE", "QUEUED", "RUNNING", "WAITING", "PAUSED", "COMPLETE", "ERRORED"],
            rows,
        ),
    }
