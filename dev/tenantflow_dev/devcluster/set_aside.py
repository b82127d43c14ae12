"""An installed operator set aside while a test session owns the cluster (issue 36).

`make demo` leaves its Helm-installed operator running; `make test` reuses that cluster,
and an operator of the chart's would join the test operator's lease group, take shards of
the tests' tenants and reconcile them with the chart's settings. For the session, every
installed operator Deployment is scaled to zero (its replicas stop gracefully, handing
their shards over), and put back as it was after. The count to put back is kept in an
annotation on the Deployment first, so a session killed half-way is undone by the next.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tenantflow.vocabulary import GROUP

PART_OF = "app.kubernetes.io/name=tenantflow"  # the chart's operator (and its UI)
REPLICAS_ANNOTATION = f"{GROUP}/set-aside-replicas"
STOP_SECONDS = 120

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class SetAside:
    namespace: str
    name: str
    replicas: int  # what it is put back to
    pods: str  # its pods' label selector


def installed(kubectl: Kubectl) -> list[SetAside]:
    """The chart's operator Deployments (not its UI's), with what to put each back to:
    its replicas, or those a session that never finished noted on it."""
    listed = kubectl("get", "deployments", "-A", "-l", PART_OF, "-o", "json")
    found = []
    for d in json.loads(listed.stdout)["items"]:
        selector = ((d["spec"].get("selector") or {}).get("matchLabels")) or {}
        if selector.get("app.kubernetes.io/name") != "tenantflow":
            continue  # the web UI: it drives nothing
        noted = (d["metadata"].get("annotations") or {}).get(REPLICAS_ANNOTATION)
        replicas = int(noted) if noted is not None else int(d["spec"].get("replicas") or 0)
        pods = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        found.append(SetAside(d["metadata"]["namespace"], d["metadata"]["name"], replicas, pods))
    return found


@contextlib.contextmanager
def operators_set_aside(kubectl: Kubectl, say: Callable[[str], None]) -> Iterator[list[SetAside]]:
    """Scale every installed operator to zero until the block ends, then put it back."""
    aside = [a for a in installed(kubectl) if a.replicas > 0]
    for a in aside:
        say(f"setting aside the installed operator {a.namespace}/{a.name} for this session")
        where = ("-n", a.namespace, f"deployment/{a.name}")
        kubectl("annotate", "--overwrite", *where, f"{REPLICAS_ANNOTATION}={a.replicas}")
        kubectl("scale", *where, "--replicas=0")
    for a in aside:  # gone, not going: a replica still stopping may still hold shards
        kubectl(
            "wait", "--for=delete", "pod", "-n", a.namespace, "-l", a.pods,
            f"--timeout={STOP_SECONDS}s", check=False,
        )  # fmt: skip
    try:
        yield aside
    finally:
        for a in aside:
            say(f"putting back the installed operator {a.namespace}/{a.name}")
            where = ("-n", a.namespace, f"deployment/{a.name}")
            kubectl("scale", *where, f"--replicas={a.replicas}")
            kubectl("annotate", *where, f"{REPLICAS_ANNOTATION}-")
