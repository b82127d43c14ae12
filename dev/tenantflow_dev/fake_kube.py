"""An in-memory fake of the API surface the controllers use, for fast unit tests.

As client-go's fake clientset (Argo's controller tests) and kopf's `kmock`: objects live in
a dict, every write bumps a resourceVersion, a merge patch carrying a stale
resourceVersion fails with 409 as the API server's does, a missing object is 404, and
every call is recorded so a test can assert what a controller did (and did not) write.
`conflict_once` makes the next write of one object fail with 409 after changing it, the
way a concurrent writer would.
"""

from __future__ import annotations

import builtins
import copy
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tenantflow.kube import resources
from tenantflow.kube.client import ApiException
from tenantflow.sandbox.pod import history_api
from tenantflow.storage.history import History
from tenantflow.vocabulary import HISTORY_PROXY

Key = tuple[str, str, str | None, str]  # (apiVersion, kind, namespace, name)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _error(status: int, reason: str) -> ApiException:
    return ApiException(status=status, reason=reason)


MUTABLE_METADATA = ("labels", "annotations")


@dataclass
class FakeKube:
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (verb, kind, name)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _before_write: dict[Key, Callable[[dict[str, Any]], None]] = field(default_factory=dict)
    # a tenant namespace's history as its runner serves it through the API server's
    # service proxy (none: 503, as with no sandbox running)
    histories: dict[str, History] = field(default_factory=dict)
    # the sandboxes' query answers by namespace: (uid, name, args) -> (status, body)
    queries: dict[str, Callable[[str, str, Any], tuple[int, dict[str, Any]]]] = field(
        default_factory=dict
    )

    # ------------------------------------------------------------------ test helpers
    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store `obj` as the API server would after a create (uid, resourceVersion)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[self._key(obj)] = obj
        return copy.deepcopy(obj)

    def read(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def conflict_once(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        change: Callable[[dict[str, Any]], None],
    ) -> None:
        """Before the next write of this object, apply `change` to it as another writer
        would (bumping its resourceVersion): that write then fails with 409."""
        self._before_write[(api_version, kind, namespace, name)] = change

    def writes(self, kind: str) -> list[tuple[str, str, str]]:
        return [c for c in self.calls if c[1] == kind and c[0] != "get" and c[0] != "list"]

    # ------------------------------------------------------------------ Kube's surface
    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        self.calls.append(("get", kind, name))
        return self.read(api_version, kind, name, namespace)

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        self.calls.append(("list", kind, namespace or ""))
        fields = dict(t.split("=", 1) for t in field_selector.split(",")) if field_selector else {}
        terms = label_selector.split(",") if label_selector else []
        wanted = dict(t.split("=", 1) for t in terms if "=" in t)
        present = [t for t in terms if "=" not in t and not t.startswith("!")]  # `key`: exists
        absent = [t[1:] for t in terms if t.startswith("!")]  # `!key`: it does not
        return [
            copy.deepcopy(o)
            for (av, k, ns, _), o in sorted(self.objects.items(), key=lambda i: str(i[0]))
            if (av, k) == (api_version, kind)
            and (namespace is None or ns == namespace)
            and all((o["metadata"].get("labels") or {}).get(a) == b for a, b in wanted.items())
            and all(key in (o["metadata"].get("labels") or {}) for key in present)
            and not any(key in (o["metadata"].get("labels") or {}) for key in absent)
            and all(_field(o, path) == value for path, value in fields.items())
        ]

    async def list_pages(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        page: int = 500,
        label_selector: str | None = None,
    ) -> AsyncIterator[tuple[builtins.list[dict[str, Any]], str]]:
        items = await self.list(api_version, kind, namespace, label_selector)
        for i in range(0, max(len(items), 1), page):
            yield items[i : i + page], "0"

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", obj["kind"], obj["metadata"]["name"]))
        if self._key(obj) in self.objects:
            raise _error(409, "AlreadyExists")
        return self.put(obj)

    async def create_if_missing(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        found = self.objects.get(self._key(obj))
        if found is not None:
            return copy.deepcopy(found), False
        return await self.create(obj), True

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("apply", obj["kind"], obj["metadata"]["name"]))
        current = self.objects.get(self._key(obj)) or {}
        return self.put(_merge(current, obj))

    async def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> bool:
        self.calls.append(("delete", kind, name))
        return self.objects.pop((api_version, kind, namespace, name), None) is not None

    async def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        body: dict[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        key = (api_version, kind, namespace, name)
        self.calls.append(("patch" + (f"/{subresource}" if subresource else ""), kind, name))
        change = self._before_write.pop(key, None)
        if change is not None and key in self.objects:
            changed = copy.deepcopy(self.objects[key])
            change(changed)
            self.put(changed)
        current = self.objects.get(key)
        if current is None:
            raise _error(404, "NotFound")
        wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
        if wanted_rv is not None and wanted_rv != current["metadata"]["resourceVersion"]:
            raise _error(409, "Conflict")
        patch = {k: v for k, v in body.items() if k != "metadata"}
        if subresource == "status":
            patch = {"status": patch.get("status") or {}}
        else:
            patch.pop("status", None)
            # a merge patch may change labels and annotations; the rest of metadata is
            # the API server's (resourceVersion above is a precondition, not a change)
            meta = {k: v for k, v in (body.get("metadata") or {}).items() if k in MUTABLE_METADATA}
            if meta:
                patch["metadata"] = meta
        return self.put(_merge(current, patch))

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        query: builtins.list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """Only the tenant history's read API (the one raw path the CLI and UI use)."""
        self.calls.append(("request", method, url))
        prefix, _, path = url.partition(f"/services/{HISTORY_PROXY[0]}/proxy")
        namespace = prefix.removeprefix("/api/v1/namespaces/")
        if method != "GET" or not path.startswith("/v1/") or "/" in namespace:
            raise _error(404, "NotFound")
        if path.startswith("/v1/queries/"):  # the sandbox's queries (issue 36.7)
            return self._query(namespace, path, query)
        history = self.histories.get(namespace)
        if history is None:
            raise _error(503, "ServiceUnavailable")
        q: dict[str, builtins.list[str]] = {}
        for k, v in query or []:
            q.setdefault(k, []).append(v)
        parts = path.split("/")[2:]
        if parts == ["instances"]:
            attributes = dict(a.split("=", 1) for a in q.get("attr", []) if "=" in a)
            ask: dict[str, Any] = {
                "op": "search",
                **{k: q[k][0] for k in ("phase", "definition") if k in q},
                **({"attributes": attributes} if attributes else {}),
                "limit": int(q.get("limit", ["50"])[0]),
            }
        elif len(parts) == 2 and parts[0] == "instances":
            ask = {"op": "get", "name": parts[1]}
        elif len(parts) == 2 and parts[0] == "logs":
            ask = {
                "op": "logs",
                "uid": parts[1],
                **{k: q[k][0] for k in ("step",) if k in q},
                **{k: int(q[k][0]) for k in ("attempt", "after", "limit") if k in q},
            }
        else:
            raise _error(404, "NotFound")
        return history_api.answer(history, ask, "2030-01-01T00:00:00Z")

    def _query(
        self, namespace: str, path: str, query: builtins.list[tuple[str, str]] | None
    ) -> dict[str, Any]:
        """A query, answered by `self.queries[namespace]` (a test's stand-in for the
        sandbox: (uid, name, args) -> (status, body)); a non-200 is an ApiException
        carrying the body, as the service proxy passes the runner's answer on."""
        answer = self.queries.get(namespace)
        if answer is None:
            raise _error(503, "ServiceUnavailable")
        parts = path.split("/")[3:]
        if len(parts) != 2:
            raise _error(404, "NotFound")
        given = dict(query or []).get("args")
        status, body = answer(unquote(parts[0]), unquote(parts[1]), json.loads(given or "[]"))
        if status != 200:
            failed = _error(status, "QueryFailed")
            failed.body = json.dumps(body)  # type: ignore[assignment]  # str, as the client
            raise failed
        return body

    async def close(self) -> None:
        pass

    @staticmethod
    def _key(obj: dict[str, Any]) -> Key:
        meta = obj["metadata"]
        # as the real client: a kind it has no REST path for fails here too
        resources.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        return (obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])


def _field(obj: dict[str, Any], path: str) -> str:
    """A selectable field's value as a field selector compares it (text; "" if unset)."""
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)
