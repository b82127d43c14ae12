"""The web UI's server: static pages, and a JSON API that reads and acts through the
Kubernetes API as the person using it (`access.py`), so RBAC decides what each one sees.

Lists are paginated by the API server (limit/continue) and filtered there (the instance
CRD's selectable fields: definition, phase, revision), so the first screen costs one
page however many instances exist. Live views are server-sent events fed by a watch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from tenantflow.errors import TenantflowError
from tenantflow.kube import history, queries
from tenantflow.kube import instances as actions
from tenantflow.kube.client import ApiException, Kube, message
from tenantflow.kube.identity import user_info
from tenantflow.kube.resources import path
from tenantflow.kube.revisions import list_revisions
from tenantflow.lifecycle.source import Code
from tenantflow.observability.logging import get_logger
from tenantflow.ui import views
from tenantflow.ui.access import Access
from tenantflow.vocabulary import (
    API_VERSION,
    DEFINITION,
    FINISHED,
    INSTANCE,
    INSTANCES_PAGE,
    TENANT,
    WORKFLOW_REF_FIELD,
    tenant_owning,
)

log = get_logger("tenantflow.ui")
STATIC = Path(__file__).parent / "static"
MAX_PAGE = 500
WATCH_SECONDS = 240  # a live view's watch, renewed by the browser
MAX_COUNTED = 5000  # instances of a definition counted per revision, at most
Handler = Callable[[web.Request, Kube], Awaitable[Any]]


@dataclass(frozen=True)
class Settings:
    access: Access
    namespaces: tuple[str, ...] = ()  # shown to whoever may not list Tenants (tenant users)


SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)


def app(settings: Settings) -> web.Application:
    application = web.Application(middlewares=[_headers])
    application[SETTINGS] = settings
    r = application.router
    r.add_get("/", _index)
    r.add_static("/static/", STATIC)
    r.add_get("/api/whoami", _api(_whoami))
    r.add_get("/api/tenants", _api(_tenants))
    r.add_get("/api/instances", _api(_instances))
    r.add_get("/api/watch/instances", _watch)
    r.add_get("/api/instances/{ns}/{name}", _api(_instance))
    r.add_get("/api/instances/{ns}/{name}/queries/{query}", _api(_query))
    r.add_get("/api/instances/{ns}/{name}/logs", _api(_logs))
    r.add_post("/api/instances/{ns}/{name}/{action}", _api(_act))
    r.add_get("/api/definitions", _api(_definitions))
    r.add_get("/api/definitions/{ns}/{name}", _api(_definition))
    r.add_get("/api/definitions/{ns}/{name}/diff", _api(_diff))
    return application


@web.middleware
async def _headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Everything the page needs is served here: no other origin, no framing."""
    response = await handler(request)
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def _index(_: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


def _api(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A JSON endpoint acting as the request's user; API errors keep their status."""

    async def run(request: web.Request) -> web.Response:
        kube = request.app[SETTINGS].access.kube_for(request)
        try:
            return web.json_response(await handler(request, kube), dumps=_dumps)
        except ApiException as exc:
            return web.json_response({"error": message(exc)}, status=exc.status or 502)
        except actions.InstanceNotFound as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except TenantflowError as exc:
            return web.json_response({"error": str(exc)}, status=400)

    return run


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


# ---------------------------------------------------------------------- reads
async def _whoami(_: web.Request, kube: Kube) -> Any:
    info = await user_info(kube)
    return {"user": info.get("username", ""), "groups": info.get("groups", [])}


async def _may(kube: Kube, namespace: str, verb: str = "list") -> bool:
    review = await kube.create(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": {
                "resourceAttributes": {
                    "group": API_VERSION.split("/")[0],
                    "resource": "workflowinstances",
                    "verb": verb,
                    "namespace": namespace,
                }
            },
        }
    )
    return bool((review.get("status") or {}).get("allowed"))


async def _tenants(request: web.Request, kube: Kube) -> Any:
    """The tenants whose instances this user may list (the others are not shown at all)."""
    try:
        items = await kube.list(API_VERSION, TENANT)
    except ApiException as exc:
        if exc.status != 403:
            raise
        return {
            "tenants": [],
            "namespaces": list(request.app[SETTINGS].namespaces),
            "listed": False,
        }
    rows = [views.tenant_row(t) for t in items]
    allowed = await asyncio.gather(*(_may(kube, row["namespace"]) for row in rows))
    visible = [row for row, ok in zip(rows, allowed, strict=True) if ok]
    return {"tenants": visible, "namespaces": [r["namespace"] for r in visible], "listed": True}


def _selectors(request: web.Request) -> str:
    """The list's filters as a field selector (the API server filters)."""
    q = request.query
    terms = []
    if q.get("definition"):
        terms.append(f"{WORKFLOW_REF_FIELD}={q['definition']}")
    if q.get("phase"):
        terms.append(f"status.phase={q['phase']}")
    if q.get("revision"):
        terms.append(f"status.revision={int(q['revision'])}")
    return ",".join(terms)


async def _page(
    kube: Kube, namespace: str | None, fields: str, limit: int, cont: str = ""
) -> dict[str, Any]:
    query = [("limit", str(limit))]
    query += [("continue", cont)] if cont else []
    query += [("fieldSelector", fields)] if fields else []
    out = await kube.request("GET", path(API_VERSION, INSTANCE, namespace), query=query)
    meta = out.get("metadata") or {}
    items = list(out.get("items") or [])
    remaining = meta.get("remainingItemCount")
    return {
        "items": [views.instance_row(i) for i in items],
        "continue": meta.get("continue") or "",
        "total": len(items) + remaining if isinstance(remaining, int) else None,
    }


async def _instances(request: web.Request, kube: Kube) -> Any:
    """One page of instances: of a namespace, or of every tenant this user may see (one
    cluster-wide list when allowed, else the first page of each visible namespace)."""
    q = request.query
    limit = min(int(q.get("limit", INSTANCES_PAGE)), MAX_PAGE)
    fields, ns = _selectors(request), q.get("namespace") or None
    if ns is not None:
        page = await _page(kube, ns, fields, limit, q.get("continue", ""))
        if q.get("continue"):
            return page
        return await _with_archived(request, kube, ns, page, limit)
    try:
        return await _page(kube, None, fields, limit, q.get("continue", ""))
    except ApiException as exc:
        if exc.status != 403:
            raise
    namespaces = (await _tenants(request, kube))["namespaces"]
    pages = await asyncio.gather(*(_page(kube, n, fields, limit) for n in namespaces))
    rows = sorted(
        (r for p in pages for r in p["items"]), key=lambda r: r["created"] or "", reverse=True
    )
    return {"items": rows[:limit], "continue": "", "total": None}


async def _with_archived(
    request: web.Request, kube: Kube, ns: str, page: dict[str, Any], limit: int
) -> dict[str, Any]:
    """A namespace's first page with the instances only its tenant's history still holds
    (filtered alike), after the live ones: the user need not know where each lives. An
    unreadable history is said, and the live page is still shown."""
    q = request.query
    query = [("limit", str(limit))]
    query += [(k, q[k]) for k in ("phase", "definition") if q.get(k)]
    try:
        found = await history.read(kube, ns, "/v1/instances", query)
    except ApiException as exc:
        return {**page, "archivedUnread": f"archived instances not shown ({exc.status})"}
    live = {r["name"] for r in page["items"]}
    archived = [
        views.archived_row(ns, item)
        for item in found.get("items") or []
        if item["name"] not in live
    ]
    return {**page, "items": page["items"] + archived}


async def _live_or_archived(kube: Kube, ns: str, name: str) -> tuple[dict[str, Any], bool]:
    """The instance as an object, else as its tenant's history kept it (and True)."""
    try:
        return await actions.get(kube, ns, name), False
    except actions.InstanceNotFound:
        try:
            found = (await history.read(kube, ns, f"/v1/instances/{name}"))["instance"]
        except ApiException:
            found = None
        if found is None:
            raise
        return dict(found["record"]), True


async def _instance(request: web.Request, kube: Kube) -> Any:
    ns, name = request.match_info["ns"], request.match_info["name"]
    inst, archived = await _live_or_archived(kube, ns, name)
    try:
        events = await kube.request(
            "GET",
            path("v1", "Event", ns),
            query=[("fieldSelector", f"involvedObject.uid={inst['metadata']['uid']}")],
        )
    except ApiException as exc:  # may read instances but not events: show the rest
        if exc.status != 403:
            raise
        events = {"items": []}
    items = sorted(events.get("items") or [], key=lambda e: e.get("lastTimestamp") or "")
    try:  # what its code logged, from the tenant's history, as this user may read it
        logged = await history.read(
            kube,
            ns,
            f"/v1/logs/{inst['metadata']['uid']}",
            [("limit", str(history.LOG_PAGE))],
        )
        lines, unread = logged.get("lines") or [], None
    except ApiException as exc:  # not theirs to read, or no sandbox to answer: the rest
        lines, unread = [], f"log lines not shown ({exc.status}: {exc.reason})"
    detail = views.instance_detail(inst, items, dt.datetime.now(dt.UTC))
    return {**detail, "logs": lines, "logsUnread": unread, "archived": archived}


async def _logs(request: web.Request, kube: Kube) -> Any:
    """An instance's lines after `after` (the last line's `seq` the page has), of one
    step and attempt if asked, as this user may read them: what the page's Logs pane
    reads while the instance runs (`ended`: no line will come after these)."""
    ns, name = request.match_info["ns"], request.match_info["name"]
    inst, archived = await _live_or_archived(kube, ns, name)
    asked = request.query
    query = [("limit", str(history.LOG_PAGE))]
    query += [(k, asked[k]) for k in ("after", "step", "attempt") if asked.get(k)]
    logged = await history.read(kube, ns, f"/v1/logs/{inst['metadata']['uid']}", query)
    phase = (inst.get("status") or {}).get("phase")
    return {
        "lines": logged.get("lines") or [],
        "limit": history.LOG_PAGE,
        "ended": archived or phase in FINISHED,
    }


async def _query(request: web.Request, kube: Kube) -> Any:
    """A query of a live instance (issue 36.7), as this user: the instance is read first
    (may they?), then its sandbox is asked by its uid through the service proxy."""
    ns, name, asked = (request.match_info[k] for k in ("ns", "name", "query"))
    inst = await actions.get(kube, ns, name)
    given = request.query.get("args")
    try:
        args = json.loads(given) if given else None
    except ValueError as exc:
        raise TenantflowError(f"args is not JSON ({exc})") from None
    if args is not None and not isinstance(args, list):
        args = [args]
    return await queries.ask(kube, ns, inst["metadata"]["uid"], asked, args)


async def _definitions(request: web.Request, kube: Kube) -> Any:
    ns = request.query.get("namespace")
    if not ns:
        raise TenantflowError("namespace is required: definitions are listed per tenant")
    items = await kube.list(API_VERSION, DEFINITION, ns)
    return {"items": [views.definition_row(d) for d in items]}


async def _definition(request: web.Request, kube: Kube) -> Any:
    ns, name = request.match_info["ns"], request.match_info["name"]
    wfd = await kube.get(API_VERSION, DEFINITION, name, ns)
    if wfd is None:
        raise web.HTTPNotFound(text=_dumps({"error": f"no definition {ns}/{name}"}))
    per_revision: dict[int, dict[str, int]] = {}
    counted, cont = 0, ""
    while counted < MAX_COUNTED:  # instances per revision and phase, one page at a time
        page = await _page(kube, ns, f"{WORKFLOW_REF_FIELD}={name}", MAX_PAGE, cont)
        for row in page["items"]:
            by_phase = per_revision.setdefault(int(row["revision"] or 0), {})
            by_phase[row["phase"]] = by_phase.get(row["phase"], 0) + 1
        counted += len(page["items"])
        cont = page["continue"]
        if not cont:
            break
    detail = views.definition_detail(wfd, await list_revisions(kube, ns, name), per_revision)
    detail["countedAll"] = not cont
    return detail


async def _diff(request: web.Request, kube: Kube) -> Any:
    ns, name = request.match_info["ns"], request.match_info["name"]
    by_number = {int(r["revision"]): r for r in await list_revisions(kube, ns, name)}
    try:
        a, b = (by_number[int(request.query[k])] for k in ("a", "b"))
    except (KeyError, ValueError):
        raise TenantflowError(f"a and b must be revisions of {name}: {sorted(by_number)}") from None
    return {
        "files": views.side_by_side(Code.from_revision(a["data"]), Code.from_revision(b["data"]))
    }


# ---------------------------------------------------------------------- actions
async def _act(request: web.Request, kube: Kube) -> Any:
    ns, name, action = (request.match_info[k] for k in ("ns", "name", "action"))
    if tenant_owning(ns) is None:
        raise TenantflowError(f"{ns} is not a tenant namespace")
    if action == "event":
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            raise TenantflowError('send {"type": "...", "payload": ...}: type names the event')
        n = await actions.send_event(kube, ns, name, body["type"], body.get("payload"))
        return {"done": f"event {body['type']!r} sent (#{n})"}
    if action == "terminate-rollback":
        await actions.terminate(kube, ns, name, rollback=True)
        return {"done": "terminate with rollback requested"}
    if action in actions.SPEC_ACTIONS:
        await actions.set_spec(kube, ns, name, action)
        return {"done": f"{action} requested"}
    if action == "restart":
        await actions.restart(kube, ns, name)
        return {"done": "restarted"}
    raise web.HTTPNotFound(text=_dumps({"error": f"no action {action!r}"}))


# ---------------------------------------------------------------------- live
async def _watch(request: web.Request) -> web.StreamResponse:
    """Server-sent events: each change of the instances a list (or one instance's page)
    shows, as the row (or the whole page's data) it now is. Across tenants, one watch of
    the cluster if the user may, else one per namespace the user may see, merged."""
    kube = request.app[SETTINGS].access.kube_for(request)
    q = request.query
    ns, name = q.get("namespace") or None, q.get("name")
    fields = ",".join(
        t for t in (_selectors(request), f"metadata.name={name}" if name else "") if t
    )
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    events: asyncio.Queue[dict[str, Any] | ApiException | None] = asyncio.Queue(maxsize=1000)
    try:
        try:  # (the first list also says whether this user may watch it)
            scopes: list[tuple[str | None, str]] = [(ns, await _since(kube, ns, fields))]
        except ApiException as exc:
            if exc.status != 403 or ns is not None:
                raise
            scopes = [(n, "") for n in (await _tenants(request, kube))["namespaces"]]
        tasks = [
            asyncio.create_task(_follow(kube, scope, version, fields, events))
            for scope, version in scopes
        ]
        try:
            await _relay(response, events, len(tasks), detail=bool(name))
        finally:
            for task in tasks:
                task.cancel()
    except ApiException as exc:
        await response.write(f"event: failed\ndata: {_dumps({'error': message(exc)})}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response


async def _since(kube: Kube, namespace: str | None, fields: str) -> str:
    """The resourceVersion a watch starts from (a one-item list: also the access check)."""
    listed = await kube.request(
        "GET",
        path(API_VERSION, INSTANCE, namespace),
        query=[("limit", "1"), *([("fieldSelector", fields)] if fields else [])],
    )
    return str((listed.get("metadata") or {}).get("resourceVersion", ""))


async def _follow(
    kube: Kube,
    namespace: str | None,
    version: str,
    fields: str,
    events: asyncio.Queue[dict[str, Any] | ApiException | None],
) -> None:
    """One watch into the queue (from `version`, else from now); None when it ends, the
    error if it fails."""
    try:
        version = version or await _since(kube, namespace, fields)
        async for event in kube.watch(
            API_VERSION,
            INSTANCE,
            version,
            WATCH_SECONDS,
            namespace=namespace,
            field_selector=fields,
        ):
            if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                await events.put(event)
    except ApiException as exc:
        await events.put(exc)
        return
    await events.put(None)


async def _relay(
    response: web.StreamResponse,
    events: asyncio.Queue[dict[str, Any] | ApiException | None],
    watches: int,
    *,
    detail: bool,
) -> None:
    """Write the watches' events until every watch has ended (the browser reconnects)."""
    while watches:
        event = await events.get()
        if event is None:
            watches -= 1
            continue
        if isinstance(event, ApiException):
            raise event
        obj = event["object"]
        data = (
            views.instance_detail(obj, [], dt.datetime.now(dt.UTC))
            if detail
            else views.instance_row(obj)
        )
        line = _dumps({"type": event["type"], "data": data})
        await response.write(f"data: {line}\n\n".encode())
