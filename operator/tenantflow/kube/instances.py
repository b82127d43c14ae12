"""What a person does to one instance through the API, as themselves: the CLI and the web
UI share these (the operator never calls them)."""

from __future__ import annotations

import asyncio
from typing import Any

from tenantflow.errors import TenantflowError
from tenantflow.kube.client import ApiException, KubeApi
from tenantflow.vocabulary import (
    API_VERSION,
    FINISHED,
    INSTANCE,
    TERMINATE_ANNOTATION,
    TERMINATE_ROLLBACK,
)

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


class InstanceTaken(TenantflowError):
    """A start-with-event named an instance that exists and cannot take the event."""


async def start_with_event(
    kube: KubeApi, body: dict[str, Any], type_: str, payload: Any = None
) -> tuple[str, bool]:
    """Temporal's signal-with-start: create the instance with the event already in its
    inbox (one write: atomic), or, when an unfinished instance of that name and definition
    exists, send it the event instead — idempotent on the name. (name, created)."""
    event = {"type": type_, "payload": payload}
    body = {**body, "spec": {**body["spec"], "events": [event]}}
    try:
        created = await kube.create(body)
        return str(created["metadata"]["name"]), True
    except ApiException as exc:
        if exc.status != 409 or "name" not in body["metadata"]:
            raise
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    inst = await get(kube, namespace, name)
    wanted = body["spec"]["workflowRef"]["name"]
    if inst["spec"]["workflowRef"]["name"] != wanted:
        raise InstanceTaken(
            f"{namespace}/{name} exists and runs {inst['spec']['workflowRef']['name']}, not "
            f"{wanted}: pick another --name"
        )
    if (inst.get("status") or {}).get("phase") in FINISHED:
        raise InstanceTaken(
            f"{namespace}/{name} exists and has finished: delete it (or restart it) to run "
            "that name again, or pick another --name"
        )
    await send_event(kube, namespace, name, type_, payload)
    return name, False


async def set_spec(kube: KubeApi, namespace: str, name: str, action: str) -> None:
    """pause, resume or terminate."""
    await kube.patch(API_VERSION, INSTANCE, name, namespace, {"spec": SPEC_ACTIONS[action]})


async def terminate(kube: KubeApi, namespace: str, name: str, *, rollback: bool) -> None:
    """spec.terminate; `rollback`: the rollbacks of its completed steps run first (the
    annotation, in the same write; GitOps users set both in Git)."""
    body: dict[str, Any] = {"spec": SPEC_ACTIONS["terminate"]}
    if rollback:
        body["metadata"] = {"annotations": {TERMINATE_ANNOTATION: TERMINATE_ROLLBACK}}
    await kube.patch(API_VERSION, INSTANCE, name, namespace, body)


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
