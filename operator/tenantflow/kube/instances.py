"""What a person does to one instance through the API, as themselves: the CLI and the web
UI share these (the operator never calls them)."""

from __future__ import annotations

import asyncio
from typing import Any

from tenantflow.errors import TenantflowError
from tenantflow.kube.client import ApiException, KubeApi
from tenantflow.vocabulary import API_VERSION, INSTANCE

SPEC_ACTIONS: dict[str, dict[str, Any]] = {
    "pause": {"suspend": True},  # after the running step
    "resume": {"suspend": False},
    "terminate": {"terminate": True},
}


class InstanceChanging(TenantflowError):
    """The instance changed under every attempt to append to it."""


class InstanceNotFound(TenantflowError):
    """No instance of that name in that namespace."""


async def get(kube: KubeApi, namespace: str, name: str) -> dict[str, Any]:
    inst = await kube.get(API_VERSION, INSTANCE, name, namespace)
    if inst is None:
        raise InstanceNotFound(f"WorkflowInstance {namespace}/{name} not found")
    return inst


async def send_event(
    kube: KubeApi, namespace: str, name: str, type_: str, payload: Any = None
) -> int:
    """Append an event to spec.events (exactly to what was read: the append is guarded by
    the resourceVersion, so two senders never overwrite each other); its 1-based number."""
    for _ in range(10):
        inst = await get(kube, namespace, name)
        events = [*(inst["spec"].get("events") or []), {"type": type_, "payload": payload}]
        body = {
            "metadata": {"resourceVersion": inst["metadata"]["resourceVersion"]},
            "spec": {"events": events},
        }
        try:
            await kube.patch(API_VERSION, INSTANCE, name, namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                continue
            raise
        return len(events)
    raise InstanceChanging(f"{namespace}/{name} kept changing; try again")


async def set_spec(kube: KubeApi, namespace: str, name: str, action: str) -> None:
    """pause, resume or terminate."""
    await kube.patch(API_VERSION, INSTANCE, name, namespace, {"spec": SPEC_ACTIONS[action]})


async def restart(kube: KubeApi, namespace: str, name: str) -> None:
    """Run it again from the beginning: the same name, labels, annotations and spec."""
    inst = await get(kube, namespace, name)
    await kube.delete(API_VERSION, INSTANCE, name, namespace)
    for _ in range(100):
        if await kube.get(API_VERSION, INSTANCE, name, namespace) is None:
            break
        await asyncio.sleep(0.1)
    spec = {**inst["spec"], "terminate": False, "suspend": False}
    meta = {
        k: inst["metadata"][k]
        for k in ("name", "namespace", "labels", "annotations")
        if k in inst["metadata"]
    }
    await kube.create({"apiVersion": API_VERSION, "kind": INSTANCE, "metadata": meta, "spec": spec})
