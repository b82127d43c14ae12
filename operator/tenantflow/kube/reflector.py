"""List-then-watch of one kind, without kopf's per-object machinery.

For WorkflowInstances — tens of thousands of objects, several events each — kopf's
processing of every event (diff bases, causes, per-object workers and memories) cost more
CPU than the handler itself. This is client-go's reflector in small: a paginated list, then
a watch from its resourceVersion with bookmarks; a dropped watch resumes where it was, an
expired one (410 Gone) lists again. The handler must be cheap and must not block.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from tenantflow.kube.client import ApiException, Kube
from tenantflow.observability.logging import get_logger

log = get_logger("tenantflow.reflector")
LISTED = "LISTED"  # an object from a (re)list, rather than from a watch event


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


async def reflect(
    kube: Kube,
    api_version: str,
    kind: str,
    handle: Callable[[str, dict[str, Any]], None],
    relisted: Callable[[set[tuple[str, str]]], None],
    *,
    timeout: int = 300,
    label_selector: str | None = None,
) -> None:
    """Run forever (until cancelled): `handle(type, object)` for every listed object and
    watch event of the kind (those `label_selector` selects); `relisted(keys)` after each
    complete list with the (namespace, name) it held, so the caller can forget objects
    deleted while no watch was open."""
    version, backoff = "", 0.5
    while True:
        try:
            if not version:
                version = await _list(kube, api_version, kind, handle, relisted, label_selector)
            version = await _watch(
                kube, api_version, kind, version, handle, timeout, label_selector
            )
            backoff = 0.5
        except _Expired:
            log.info("watch expired; listing again", kind=kind)
            version = ""
        except (ApiException, aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            log.warning("watch failed; resuming", kind=kind, error=repr(exc), retry_in=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)


async def _list(
    kube: Kube,
    api_version: str,
    kind: str,
    handle: Callable[[str, dict[str, Any]], None],
    relisted: Callable[[set[tuple[str, str]]], None],
    label_selector: str | None,
) -> str:
    keys: set[tuple[str, str]] = set()
    version = ""
    async for items, page_version in kube.list_pages(
        api_version, kind, label_selector=label_selector
    ):
        version = page_version  # every page of one list has the same version
        for obj in items:
            obj.setdefault("apiVersion", api_version)
            obj.setdefault("kind", kind)
            keys.add((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
            handle(LISTED, obj)
        await asyncio.sleep(0)  # let drives run between pages
    relisted(keys)
    return version


async def _watch(
    kube: Kube,
    api_version: str,
    kind: str,
    version: str,
    handle: Callable[[str, dict[str, Any]], None],
    timeout: int,
    label_selector: str | None,
) -> str:
    try:
        async for event in kube.watch(api_version, kind, version, timeout, label_selector):
            obj = event.get("object") or {}
            if event.get("type") == "ERROR":
                if obj.get("code") == 410:
                    raise _Expired()
                raise ApiException(status=obj.get("code"), reason=obj.get("message"))
            version = obj.get("metadata", {}).get("resourceVersion") or version
            if event.get("type") != "BOOKMARK":
                handle(str(event["type"]), obj)
    except ApiException as exc:
        if exc.status == 410:
            raise _Expired() from None
        raise
    return version
