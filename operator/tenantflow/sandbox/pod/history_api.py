"""The runner's history requests (issue 34): the operator's archive writes (signed) and
people's reads (read-only, through the API server's proxy), checked field by field,
answered from the tenant's history store.

Only the operator reaches these (every request is signed with the tenant's key, as an
advance is); tenant code never does, and never opens the store. The operator decides who
may read (the API server's own RBAC); this module only checks shape and bounds, so a
malformed request is refused with the field it got wrong, and nothing unbounded is read
into memory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from tenantflow.durations import format_time
from tenantflow.sandbox.protocol.payload import MAX_ARCHIVE_BATCH
from tenantflow.storage.history import Archived, History, HistoryError

MAX_NAME = 253
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE = 256


class HistoryRequestError(HistoryError):
    """A history request whose shape is wrong: the message names the field."""


def answer(history: History, request: Any, now: str) -> dict[str, Any]:
    """One request's answer (`op`: archive, search, get, logs, prune)."""
    if not isinstance(request, dict):
        raise HistoryRequestError("the request must be a JSON object")
    op = request.get("op")
    if op == "archive" and "instances" in request:
        return _archive_batch(history, request["instances"], now)
    if op == "archive":  # one instance: what operators before batching send
        history.archive(_archived(request.get("instance")), now)
        return {"archived": True}
    if op == "search":
        before = request.get("before")
        items, more = history.search(
            phase=_text(request, "phase", optional=True),
            definition=_text(request, "definition", optional=True),
            attributes=_attributes(request.get("attributes")),
            before=_cursor(before) if before is not None else None,
            limit=_int(request, "limit", 50),
        )
        return {"items": [i.summary() for i in items], "next": list(more) if more else None}
    if op == "get":
        found = history.get(_text(request, "name"))
        return {"instance": {**found.summary(), "record": found.record} if found else None}
    if op == "logs":
        lines = history.logs(
            _text(request, "uid"),
            step=_text(request, "step", optional=True),
            attempt=_int(request, "attempt", None),
            after=_int(request, "after", 0),
            limit=_int(request, "limit", 1000),
        )
        return {"lines": [line.wire() for line in lines]}
    if op == "prune":
        return {"pruned": history.prune(_text(request, "before"))}
    raise HistoryRequestError(f"op must be archive, search, get, logs or prune, not {op!r}")


def _archive_batch(history: History, raw: Any, now: str) -> dict[str, Any]:
    """Several instances in one transaction. One that is not well-formed is refused on its
    own (its uid and why), so it cannot keep the others out of the store; a store that
    cannot take them (full) refuses the request."""
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_ARCHIVE_BATCH:
        raise HistoryRequestError(f"instances must be a list of 1 to {MAX_ARCHIVE_BATCH} instances")
    kept: list[Archived] = []
    refused: list[dict[str, str]] = []
    for i, item in enumerate(raw):
        try:
            kept.append(_archived(item, where=f"instances[{i}]."))
        except HistoryRequestError as exc:
            uid = item.get("uid") if isinstance(item, dict) else None
            refused.append({"uid": str(uid)[:MAX_NAME] if uid else "", "error": str(exc)})
    if kept:
        history.archive_many(kept, now)
    return {"archived": [a.uid for a in kept], "refused": refused}


def _archived(raw: Any, where: str = "instance.") -> Archived:
    if not isinstance(raw, dict):
        raise HistoryRequestError(f"{where.rstrip('.')} must be an object")
    record = raw.get("record")
    if not isinstance(record, dict):
        raise HistoryRequestError(f"{where}record must be an object")
    return Archived(
        uid=_text(raw, "uid", where=where),
        name=_text(raw, "name", where=where),
        definition=_text(raw, "definition", where=where),
        phase=_text(raw, "phase", where=where),
        created_at=_text(raw, "createdAt", where=where),
        finished_at=_text(raw, "finishedAt", where=where),
        attributes=_attributes(raw.get("attributes")) or {},
        record=record,
    )


def _text(raw: dict[str, Any], key: str, *, optional: bool = False, where: str = "") -> Any:
    value = raw.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
        raise HistoryRequestError(f"{where}{key} must be a string of 1 to {MAX_NAME} characters")
    return value


def _int(raw: dict[str, Any], key: str, default: int | None) -> Any:
    value = raw.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 53:
        raise HistoryRequestError(f"{key} must be a non-negative integer")
    return value


def _attributes(raw: Any) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or len(raw) > MAX_ATTRIBUTES:
        raise HistoryRequestError(f"attributes must be an object of at most {MAX_ATTRIBUTES}")
    for k, v in raw.items():
        if not (isinstance(v, str) and 0 < len(k) <= MAX_NAME and len(v) <= MAX_ATTRIBUTE):
            raise HistoryRequestError(
                f"attribute {str(k)[:64]!r} must map a name of at most {MAX_NAME} characters "
                f"to a string of at most {MAX_ATTRIBUTE}"
            )
    return dict(raw)


def _cursor(raw: Any) -> tuple[str, str]:
    if not (isinstance(raw, list) and len(raw) == 2 and all(isinstance(p, str) for p in raw)):
        raise HistoryRequestError("before must be the [finishedAt, uid] a page's `next` gave")
    return raw[0], raw[1]


# ---------------------------------------------------------------------- people's reads
Query = Callable[[str, str, str | None], Awaitable[web.Response]]


def read_app(history: History, query: Query | None = None) -> web.Application:
    """The history, read-only, for people: served on its own port, which only the API
    server reaches (its service proxy, `services/sandbox:history/proxy`, authorized by
    the tenant's own RBAC: whoever may read the tenant's instances may read their
    history) and the pod itself. GET only; every answer bounded like the operator's.

    `query` (the runner's): `GET /v1/queries/{uid}/{name}?args=<JSON list>`, a query of
    a live instance answered by a read-only replay in the sandbox (issue 36.7)."""

    async def instances(request: web.Request) -> web.Response:
        q = request.query
        attributes = dict(a.split("=", 1) for a in q.getall("attr", []) if "=" in a)
        before = q.get("before")
        return await _read(
            history,
            {
                "op": "search",
                **_given(q, "phase", "definition"),
                **({"attributes": attributes} if attributes else {}),
                **({"before": before.split(",", 1)} if before else {}),
                **_numbers(q, "limit"),
            },
        )

    async def instance(request: web.Request) -> web.Response:
        return await _read(history, {"op": "get", "name": request.match_info["name"]})

    async def logs(request: web.Request) -> web.Response:
        q = request.query
        return await _read(
            history,
            {
                "op": "logs",
                "uid": request.match_info["uid"],
                **_given(q, "step"),
                **_numbers(q, "attempt", "after", "limit"),
            },
        )

    async def ask(request: web.Request) -> web.Response:
        assert query is not None
        info = request.match_info
        uid = info["uid"]
        if not 0 < len(uid) <= MAX_NAME:
            return web.json_response(
                {"error": f"uid must be 1 to {MAX_NAME} characters"}, status=400
            )
        return await query(uid, info["name"], request.query.get("args"))

    app = web.Application(client_max_size=4096)
    app.router.add_get("/v1/instances", instances)
    app.router.add_get("/v1/instances/{name}", instance)
    app.router.add_get("/v1/logs/{uid}", logs)
    if query is not None:
        app.router.add_get("/v1/queries/{uid}/{name}", ask)
    return app


async def _read(history: History, request: dict[str, Any]) -> web.Response:
    now = format_time(dt.datetime.now(dt.UTC))
    try:
        answer_ = await asyncio.to_thread(answer, history, request, now)
    except HistoryError as exc:
        return web.json_response({"error": str(exc)[:1000]}, status=400)
    return web.json_response(answer_)


def _given(query: Mapping[str, str], *names: str) -> dict[str, str]:
    return {n: query[n] for n in names if query.get(n)}


def _numbers(query: Mapping[str, str], *names: str) -> dict[str, Any]:
    """Integers from the query string; a value that is not one is passed on as text, for
    `answer` to refuse naming the field."""
    out: dict[str, Any] = {}
    for n in names:
        if n in query:
            value = query[n]
            out[n] = int(value) if value.isdigit() and len(value) < 17 else value
    return out
