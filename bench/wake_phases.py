"""Where a sandbox's wake from zero goes (issue 37.3): the moments one wake passes through,
each noted when a watch first shows it, so the benchmark says which part is over the goal.
A new tenant's cold start passes through them too, after its volume is bound.

From the instance's creation (t0): the operator scales the StatefulSet up; the pod is
created, scheduled and its runner container started; the runner has imported and logs that
it is starting (the container log's own timestamp); the kubelet's readiness probe passes;
the EndpointSlice lists the pod as ready; the instance's first step is Complete. Watches
(one thread per kind), not polling: each moment is seen within a watch event's delivery.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from bench.cluster import kubectl
from tenantflow.vocabulary import GROUP, VERSION

SANDBOX_PODS = "app.kubernetes.io/name=sandbox"
# in the order a wake passes through them
PHASES = (
    "volumeBound",  # a new tenant's (a wake finds it bound)
    "scaledUp",
    "podCreated",
    "podScheduled",
    "containerStarted",
    "runnerStarting",
    "podReady",
    "endpointReady",
    "firstStepComplete",
)


def _condition(obj: Any, kind: str) -> bool:
    return any(c.type == kind and c.status == "True" for c in obj.status.conditions or [])


def _running(pod: Any) -> bool:
    return any(
        c.name == "runner" and c.state and c.state.running
        for c in pod.status.container_statuses or []
    )


class WakeClock:
    """The first time each phase of one wake was seen, in seconds after `t0`."""

    def __init__(self, kubeconfig: Path, namespace: str, instance: str) -> None:
        self.kubeconfig, self.ns, self.instance = kubeconfig, namespace, instance
        self.api = config.new_client_from_config(str(kubeconfig))
        self.marks: dict[str, float] = {}
        self.t0 = 0.0
        self.wall0 = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watches: list[watch.Watch] = []

    def mark(self, phase: str) -> None:
        with self._lock:
            if self.t0 and phase not in self.marks:
                self.marks[phase] = time.perf_counter() - self.t0

    def started(self) -> None:
        """t0: the instance is about to be created."""
        self.t0, self.wall0 = time.perf_counter(), time.time()

    def _follow(self, lister: Callable[..., Any], on: Callable[[Any], None], **kw: Any) -> None:
        w = watch.Watch()
        self._watches.append(w)
        while not self._stop.is_set():
            try:
                for event in w.stream(lister, timeout_seconds=30, **kw):
                    on(event["object"])
                    if self._stop.is_set():
                        break
            except Exception:  # a watch cut by the API server: again
                time.sleep(0.05)

    def _on_sts(self, sts: Any) -> None:
        if sts.metadata.name == "sandbox" and (sts.spec.replicas or 0) >= 1:
            self.mark("scaledUp")

    def _on_pod(self, pod: Any) -> None:
        if pod.metadata.deletion_timestamp is not None:
            return
        self.mark("podCreated")
        if _condition(pod, "PodScheduled"):
            self.mark("podScheduled")
        if _running(pod):
            self.mark("containerStarted")
        if _condition(pod, "Ready"):
            self.mark("podReady")

    def _on_claim(self, pvc: Any) -> None:
        if pvc.metadata.name == "tenant-data" and pvc.status and pvc.status.phase == "Bound":
            self.mark("volumeBound")

    def _on_slice(self, eps: Any) -> None:
        if any(e.conditions and e.conditions.ready for e in eps.endpoints or []):
            self.mark("endpointReady")

    def _on_instance(self, inst: dict[str, Any]) -> None:
        if inst["metadata"]["name"] != self.instance:
            return
        steps = (inst.get("status") or {}).get("steps") or []
        if steps and steps[0].get("state") == "Complete":
            self.mark("firstStepComplete")

    @contextmanager
    def watching(self) -> Iterator[WakeClock]:
        core, apps = client.CoreV1Api(self.api), client.AppsV1Api(self.api)
        discovery, custom = client.DiscoveryV1Api(self.api), client.CustomObjectsApi(self.api)
        follows: list[tuple[Callable[..., Any], Callable[[Any], None], dict[str, Any]]] = [
            (apps.list_namespaced_stateful_set, self._on_sts, {"namespace": self.ns}),
            (
                core.list_namespaced_pod,
                self._on_pod,
                {"namespace": self.ns, "label_selector": SANDBOX_PODS},
            ),
            (discovery.list_namespaced_endpoint_slice, self._on_slice, {"namespace": self.ns}),
            (core.list_namespaced_persistent_volume_claim, self._on_claim, {"namespace": self.ns}),
            (
                custom.list_namespaced_custom_object,
                self._on_instance,
                {
                    "group": GROUP,
                    "version": VERSION,
                    "namespace": self.ns,
                    "plural": "workflowinstances",
                },
            ),
        ]
        threads = [
            threading.Thread(target=self._follow, args=(lister, on), kwargs=kw, daemon=True)
            for lister, on, kw in follows
        ]
        for t in threads:
            t.start()
        time.sleep(0.5)  # the watches' initial lists are in (the sandbox is at zero)
        try:
            yield self
        finally:
            self._stop.set()
            for w in self._watches:
                w.stop()
            self.api.close()

    def wait_done(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while "firstStepComplete" not in self.marks and time.monotonic() < deadline:
            time.sleep(0.02)
        self._runner_log()

    def _runner_log(self) -> None:
        """When the runner logged "runner starting" (its imports done, its canary next),
        by the container log's timestamp (nanoseconds, the node's clock: this machine's)."""
        out = kubectl(
            self.kubeconfig, "logs", "-n", self.ns, "-l", SANDBOX_PODS, "-c", "runner",
            "--timestamps", "--tail=200",
        )  # fmt: skip
        for line in out.splitlines():
            if "runner starting" in line:
                stamp = dt.datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00"))
                with self._lock:
                    self.marks.setdefault("runnerStarting", stamp.timestamp() - self.wall0)
                return

    def phases(self) -> dict[str, float]:
        return {p: round(self.marks[p], 3) for p in PHASES if p in self.marks}
