"""The lean list-then-watch (kube/reflector.py) against the real API server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tenantflow.kube.client import Kube
from tenantflow.kube.reflector import LISTED, reflect


def test_lists_then_watches_adds_changes_and_deletes(kubeconfig: Path, namespace: str) -> None:
    async def main() -> tuple[list[tuple[str, str]], list[set[tuple[str, str]]]]:
        kube = await Kube.connect(str(kubeconfig))
        seen: list[tuple[str, str]] = []
        lists: list[set[tuple[str, str]]] = []

        def cm(name: str, **data: str) -> dict[str, Any]:
            meta = {"name": name, "namespace": namespace}
            return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}

        arrived = asyncio.Event()

        def handle(kind: str, obj: dict[str, Any]) -> None:
            if obj["metadata"].get("namespace") == namespace and obj["metadata"]["name"] != (
                "kube-root-ca.crt"
            ):
                seen.append((kind, obj["metadata"]["name"]))
                arrived.set()

        async def until(what: tuple[str, str]) -> None:
            async with asyncio.timeout(30):
                while what not in seen:
                    arrived.clear()
                    await arrived.wait()

        await kube.create(cm("before"))
        task = asyncio.create_task(reflect(kube, "v1", "ConfigMap", handle, lists.append))
        try:
            await until((LISTED, "before"))
            await kube.create(cm("after"))
            await until(("ADDED", "after"))
            await kube.patch("v1", "ConfigMap", "after", namespace, {"data": {"k": "v"}})
            await until(("MODIFIED", "after"))
            await kube.delete("v1", "ConfigMap", "before", namespace)
            await until(("DELETED", "before"))
        finally:
            task.cancel()
            await kube.close()
        return seen, lists

    seen, lists = asyncio.run(main())
    assert seen == [
        (LISTED, "before"),
        ("ADDED", "after"),
        ("MODIFIED", "after"),
        ("DELETED", "before"),
    ]
    assert len(lists) == 1 and (namespace, "before") in lists[0]
