"""`tenantflow migrate-storage [--dry-run]`: rewrite every object of our kinds in the
storage version, then record on each CRD that nothing is stored in an older one.

Why: the API server keeps an object in etcd in the version it was written in, and each CRD
lists those versions in `status.storedVersions`. A version may be dropped from a CRD only
once nothing is stored in it, which only a rewrite of every object proves. An update that
changes nothing but the encoding still writes the object (its stored bytes differ), which
is how the Kubernetes storage-version migrator works; cert-manager's `cmctl upgrade
migrate-api-version` is the same step. Run it after an upgrade that changed the storage
version (0.1.0 stored `v1alpha1`, later releases store `v1beta1`), and before a release that
stops serving the old version (docs/operations.md, "Upgrades").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import click

from tenantflow.api.crd import KINDS
from tenantflow.cli.common import Env, Output, verb
from tenantflow.cli.text import table
from tenantflow.kube.client import MERGE, ApiException, Kube
from tenantflow.vocabulary import GROUP, VERSION

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
FIELD_MANAGER = "tenantflow-migrate-storage"
PAGE = 500


@dataclass(frozen=True)
class Resource:
    """A custom resource to migrate: `plural.group`, stored in `version` from now on."""

    group: str
    plural: str
    version: str

    @property
    def crd(self) -> str:
        return f"{CRDS}/{self.plural}.{self.group}"

    def url(self, namespace: str | None = None, name: str | None = None) -> str:
        where = f"/namespaces/{namespace}" if namespace else ""
        return f"/apis/{self.group}/{self.version}{where}/{self.plural}" + (
            f"/{name}" if name else ""
        )


@dataclass(frozen=True)
class Migrated:
    """What one CRD stored before, how many objects were rewritten, what it stores now
    (camelCase: `-o json` prints them as the API names its fields)."""

    crd: str
    storedBefore: list[str]
    rewritten: int
    storedAfter: list[str]


OURS = tuple(Resource(GROUP, kind.plural, VERSION) for kind in KINDS)


async def migrate(
    kube: Kube,
    resources: tuple[Resource, ...] = OURS,
    *,
    dry_run: bool = False,
    say: Callable[[str], None] = lambda line: None,
) -> list[Migrated]:
    """Rewrite each resource's objects whose CRD says an older version is stored, then set
    its storedVersions to the storage version alone. Idempotent; safe while the operator
    runs: an object it writes meanwhile is stored in the storage version by that write."""
    out = []
    for resource in resources:
        crd = await kube.request("GET", resource.crd)
        before = list((crd.get("status") or {}).get("storedVersions") or [])
        if before == [resource.version]:
            out.append(Migrated(crd["metadata"]["name"], before, 0, before))
            continue
        rewritten = 0
        async for item in _objects(kube, resource):
            if not dry_run:
                await _rewrite(kube, resource, item)
            rewritten += 1
        after = before if dry_run else await _stored(kube, resource)
        done = "to rewrite" if dry_run else "rewritten"
        say(f"{crd['metadata']['name']}: {rewritten} objects {done}")
        out.append(Migrated(crd["metadata"]["name"], before, rewritten, after))
    return out


async def _objects(kube: Kube, resource: Resource) -> Any:
    """Every object of `resource` in every namespace, page by page (as the storage version)."""
    cont = ""
    while True:
        query = [("limit", str(PAGE))] + ([("continue", cont)] if cont else [])
        page = await kube.request("GET", resource.url(), query=query)
        for item in page.get("items") or []:
            yield item
        cont = (page.get("metadata") or {}).get("continue") or ""
        if not cont:
            return


async def _rewrite(kube: Kube, resource: Resource, item: dict[str, Any]) -> None:
    """PUT the object as read. A 409 means someone wrote it since (which stored it in the
    storage version already); a 404 that it is gone. Both leave nothing to migrate."""
    meta = item["metadata"]
    item = {**item, "apiVersion": f"{resource.group}/{resource.version}"}
    try:
        await kube.request(
            "PUT",
            resource.url(meta.get("namespace"), meta["name"]),
            body=item,
            query=[("fieldManager", FIELD_MANAGER)],
        )
    except ApiException as exc:
        if exc.status not in (404, 409):
            raise


async def _stored(kube: Kube, resource: Resource) -> list[str]:
    """Record that only the storage version is stored (the CRD's status subresource)."""
    crd = await kube.request(
        "PATCH",
        f"{resource.crd}/status",
        body={"status": {"storedVersions": [resource.version]}},
        content_type=MERGE,
    )
    return list(crd["status"]["storedVersions"])


@verb(
    "migrate-storage",
    "rewrite every tenantflow object in the storage version, so older versions can be "
    "dropped (after an upgrade; needs cluster-wide update rights and the CRDs' status)",
    click.option("--dry-run", is_flag=True, help="only count what would be rewritten"),
)
async def migrate_storage(env: Env, dry_run: bool = False) -> Output:
    done = await migrate(env.kube, dry_run=dry_run, say=env.say)
    rows = [
        [m.crd, ",".join(m.storedBefore), str(m.rewritten), ",".join(m.storedAfter)] for m in done
    ]
    text = table(["CRD", "STORED BEFORE", "REWRITTEN", "STORED NOW"], rows)
    return Output([asdict(m) for m in done], text)
