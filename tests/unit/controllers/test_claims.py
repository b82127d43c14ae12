"""A new tenant's sandbox pod waits for its volumes where their class binds them at once
(issue 37.4: with a thousand claims being bound, a pod created first was unschedulable
for minutes), and never where the class binds them for the pod (WaitForFirstConsumer)
or where the class cannot be read (the old behaviour, not a deadlock)."""

from __future__ import annotations

from typing import Any

import pytest

from tenantflow.api.tenant import Tenant
from tenantflow.controllers.claims import UNREADABLE_RETRY, StorageClasses
from tenantflow.controllers.persist import Persist
from tenantflow.controllers.tenant import reconcile
from tenantflow.kube.client import ApiException
from tenantflow.kube.events import EventRecorder
from tenantflow.tenancy import manifests
from tenantflow.vocabulary import API_VERSION, TENANT
from tenantflow_dev.fake_kube import FakeKube

pytestmark = pytest.mark.unit
SETTINGS = manifests.OperatorSettings(sandbox_image="reg/sandbox:1")
NS = "tenant-acme"


class NoStorageClassRbac(FakeKube):
    forbidden = True  # until the chart's RBAC grants the read

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        if kind == "StorageClass" and self.forbidden:
            raise ApiException(status=403, reason="Forbidden")
        return await super().get(api_version, kind, name, namespace)


def cluster(mode: str | None, kube: FakeKube | None = None) -> FakeKube:
    """A Tenant whose claims the DefaultStorageClass admission gave the class `standard`."""
    kube = kube or FakeKube()
    body = Tenant.model_validate({"metadata": {"name": "acme", "uid": "u-1"}, "spec": {}})
    kube.put({**body.model_dump(by_alias=True, exclude_none=True), "apiVersion": API_VERSION,
              "kind": TENANT})  # fmt: skip
    if mode is not None:
        kube.put({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                  "metadata": {"name": "standard"}, "volumeBindingMode": mode})  # fmt: skip
    for claim in (manifests.PVC, manifests.HISTORY_PVC):
        kube.put({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                  "metadata": {"name": claim, "namespace": NS},
                  "spec": {"storageClassName": "standard"},
                  "status": {"phase": "Pending"}})  # fmt: skip
    return kube


async def once(kube: FakeKube, classes: StorageClasses) -> Any:
    return await reconcile(
        kube, EventRecorder(kube), Persist(kube), SETTINGS, lambda _: {}, "acme", None, classes
    )


def has_sandbox(kube: FakeKube) -> bool:
    return kube.read("apps/v1", "StatefulSet", manifests.SANDBOX, NS) is not None


async def test_the_first_pod_waits_for_immediate_claims_to_be_bound() -> None:
    kube = cluster("Immediate")
    classes = StorageClasses(kube)
    held = await once(kube, classes)
    assert not has_sandbox(kube) and held.look_again is not None  # and their events
    for claim in (manifests.PVC, manifests.HISTORY_PVC):
        obj = kube.read("v1", "PersistentVolumeClaim", claim, NS)
        kube.put({**obj, "status": {"phase": "Bound"}})
    await once(kube, classes)
    assert has_sandbox(kube)
    # once it exists, a claim Pending again (a restore) never holds the sandbox back
    obj = kube.read("v1", "PersistentVolumeClaim", manifests.PVC, NS)
    kube.put({**obj, "status": {"phase": "Pending"}})
    await once(kube, classes)
    assert has_sandbox(kube)


@pytest.mark.parametrize("mode", ["WaitForFirstConsumer", None])
async def test_a_class_that_binds_for_the_pod_or_is_missing_never_holds_it(
    mode: str | None,
) -> None:
    kube = cluster(mode)
    await once(kube, StorageClasses(kube))
    assert has_sandbox(kube)


async def test_without_rbac_for_storage_classes_the_pod_is_created_as_before() -> None:
    kube = cluster("Immediate", NoStorageClassRbac())
    classes = StorageClasses(kube)
    await once(kube, classes)
    assert has_sandbox(kube) and classes.modes == {} and "standard" in classes.unreadable


async def test_a_class_unreadable_once_is_read_again_later() -> None:
    # the chart's upgrade grants the read while the operator runs: no restart needed
    rbac = NoStorageClassRbac()
    kube = cluster("Immediate", rbac)
    now = [1000.0]
    classes = StorageClasses(kube, clock=lambda: now[0])
    assert await classes.binding_mode("standard") is None
    rbac.forbidden = False
    now[0] += UNREADABLE_RETRY - 1
    assert await classes.binding_mode("standard") is None, "read again too soon"
    now[0] += 2
    assert await classes.binding_mode("standard") == "Immediate"
    assert classes.unreadable == {} and classes.modes == {"standard": "Immediate"}
