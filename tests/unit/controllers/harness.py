"""An instance controller wired to the in-memory API and an in-process sandbox (the real
engine and a real SQLite file, run in a thread): its decisions, without a cluster."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from tenantflow.controllers import definition
from tenantflow.controllers.instances import InstanceController, InstanceSettings
from tenantflow.controllers.persist import Persist
from tenantflow.controllers.revision_cache import RevisionCache
from tenantflow.controllers.sandboxes import Sandboxes
from tenantflow.kube.events import EventRecorder
from tenantflow.sandbox.client.transport import HttpTransport, SandboxUnavailable, refusal
from tenantflow.sandbox.pod import history_api, worker
from tenantflow.storage.history import History, HistoryError
from tenantflow.vocabulary import API_VERSION, DEFINITION, INSTANCE, TENANT
from tenantflow_dev.fake_kube import FakeKube

NS = "tenant-acme"


@dataclass
class InProcessSandbox:
    """Sandboxes + transport in one: advances run the real worker code in a thread; a
    test can make the next calls fail as a lost worker or an unreachable runner would."""

    data_dir: Path
    calls: int = 0
    failures: list[SandboxUnavailable] = field(default_factory=list)
    history_failures: list[SandboxUnavailable] = field(default_factory=list)
    history_requests: list[dict[str, Any]] = field(default_factory=list)  # as received
    one_at_a_time: asyncio.Lock = field(default_factory=asyncio.Lock)
    store: History | None = None  # the tenant's history, as its runner keeps it
    # merged into the next answers, as a runner adds its own keys (e.g. its report of
    # records it rejected)
    answer_extra: dict[str, Any] = field(default_factory=dict)
    waiters: list[str] = field(default_factory=list)  # instances waiting for a start from zero
    batches: bool = True  # False: a runner older than the batched archive form

    async def history(self, endpoint: str, request: dict[str, Any]) -> dict[str, Any]:
        self.history_requests.append(request)
        if self.history_failures:
            raise self.history_failures.pop(0)
        if self.store is None:
            self.store = History(self.data_dir / "history")
        if not self.batches and "instances" in request:
            # what such a runner did with a key it did not know: nothing, and then it
            # found no `instance` (its 400, as sandbox/pod/runner.py answers one)
            older = {k: v for k, v in request.items() if k != "instances"}
            try:
                return history_api.answer(self.store, older, "2030-01-01T00:00:00Z")
            except HistoryError as exc:
                raise refusal(400, {"error": {"name": "BadRequest", "message": str(exc)}}) from None
        return history_api.answer(self.store, request, "2030-01-01T00:00:00Z")

    async def endpoint(self, tenant: str) -> str:
        return tenant

    def forget(self, tenant: str) -> None:
        pass

    def waiting_for(self, tenant: str, key: str) -> None:
        """An instance waits for its tenant's sandbox to start from zero."""
        self.waiters.append(key)

    def close(self) -> None:
        pass

    async def advance(self, endpoint: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        # one at a time: an advance installs its workflow's modules in this process's
        # sys.modules (the real sandbox forks a process for each), so two at once would
        # run each other's code
        async with self.one_at_a_time:
            answer = await asyncio.to_thread(worker.run, payload, str(self.data_dir), endpoint)
        return {**answer, **self.answer_extra}


@dataclass
class Harness:
    kube: FakeKube
    sandbox: InProcessSandbox
    controller: InstanceController
    usage_refreshes: list[str]
    revisions: RevisionCache

    @classmethod
    def new(
        cls,
        tmp_path: Path,
        *,
        kube: FakeKube | None = None,
        **limits: Any,
    ) -> Harness:
        """A controller over `kube` (a new fake API unless given: a restarted operator
        keeps the API and its objects, nothing of its own memory)."""
        kube = kube if kube is not None else FakeKube()
        sandbox, revisions = InProcessSandbox(tmp_path), RevisionCache()
        refreshes: list[str] = []
        kube.put(
            {
                "apiVersion": API_VERSION,
                "kind": TENANT,
                "metadata": {"name": "acme"},
                "spec": {"limits": limits},
            }
        )
        controller = InstanceController(
            kube,
            cast(Sandboxes, sandbox),
            revisions,
            usage_changed=refreshes.append,
            settings=InstanceSettings(finished_ttl=0),
            transport=cast(HttpTransport, sandbox),
        )
        return cls(kube, sandbox, controller, refreshes, revisions)

    async def define(self, name: str, source: str | None = None, **source_spec: Any) -> int:
        """Create a definition (inline `source`, or `files=`, `configMapRef=`, `main=`) and
        reconcile it with the real definition controller; returns its active revision."""
        self.kube.put(
            {
                "apiVersion": API_VERSION,
                "kind": DEFINITION,
                "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"},
                "spec": {"source": {"inline": source} if source else source_spec},
            }
        )
        self.revisions.forget_definition(NS, name)  # as the definition controller's watch does
        await definition.reconcile(
            self.kube, EventRecorder(self.kube), Persist(self.kube), f"{NS}/{name}"
        )
        status = self.kube.read(API_VERSION, DEFINITION, name, NS)["status"]
        assert status["conditions"][0]["status"] == "True", status["conditions"]
        return int(status["activeRevision"])

    def start(self, name: str, workflow: str, **spec: Any) -> str:
        self.kube.put(
            {
                "apiVersion": API_VERSION,
                "kind": INSTANCE,
                "metadata": {"name": name, "namespace": NS},
                "spec": {"workflowRef": {"name": workflow}, **spec},
            }
        )
        return f"{NS}/{name}"

    def watched(self, name: str) -> dict[str, Any]:
        """The instance as a watch event would bring it now."""
        obj = self.kube.read(API_VERSION, INSTANCE, name, NS)
        assert obj is not None
        return obj

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.watched(name).get("status") or {})

    def events(self) -> list[tuple[str, str]]:
        return [
            (o["type"], o["reason"])
            for (_, kind, _, _), o in self.kube.objects.items()
            if kind == "Event"
        ]

    async def drive(self, key: str, times: int = 1) -> None:
        for _ in range(times):
            await self.controller.drive(key)
