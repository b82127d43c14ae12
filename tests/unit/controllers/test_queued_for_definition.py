"""An instance whose definition is not Ready yet says so on its Admitted condition; the
normal race of applying both together is no Warning, a wait past the grace is one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from tenantflow.controllers.instances.revisions import DEFINITION_GRACE
from tenantflow.durations import format_time
from tenantflow.vocabulary import API_VERSION, INSTANCE, Phase
from tests.unit.controllers.harness import NS, Harness

SOURCE = """
async def run(event, step, env):
    return 'ok'
"""


def created(h: Harness, name: str, ago: float) -> str:
    """An instance of `ci` created `ago` seconds ago."""
    at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=ago)
    h.kube.put(
        {
            "apiVersion": API_VERSION,
            "kind": INSTANCE,
            "metadata": {"name": name, "namespace": NS, "creationTimestamp": format_time(at)},
            "spec": {"workflowRef": {"name": "ci"}},
        }
    )
    return f"{NS}/{name}"


def admitted(h: Harness, name: str) -> dict[str, Any]:
    st = h.status(name)
    assert st["phase"] == Phase.QUEUED
    return next(c for c in st["conditions"] if c["type"] == "Admitted")


async def test_applied_with_its_definition_it_waits_without_a_warning(tmp_path: Path) -> None:
    h = Harness.new(tmp_path)
    key = created(h, "build-1", ago=1)
    await h.drive(key)  # read before the definition's first revision exists
    condition = admitted(h, "build-1")
    assert condition["status"] == "False" and condition["reason"] == "WaitingForDefinition"
    assert "WorkflowDefinition ci does not exist yet" in condition["message"]
    assert [e for e in h.events() if e[0] == "Warning"] == []
    await h.define("ci", SOURCE)
    await h.drive(key)
    assert h.status("build-1")["phase"] == Phase.COMPLETE


async def test_a_definition_that_never_becomes_ready_is_a_warning_after_the_grace(
    tmp_path: Path,
) -> None:
    h = Harness.new(tmp_path)
    h.kube.put(  # a definition whose source does not parse: never Ready
        {
            "apiVersion": API_VERSION,
            "kind": "WorkflowDefinition",
            "metadata": {"name": "ci", "namespace": NS},
            "spec": {"source": {"inline": "def run(:"}},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "InvalidSource", "message": "x"}
                ]
            },
        }
    )
    key = created(h, "build-1", ago=DEFINITION_GRACE + 1)
    await h.drive(key)
    condition = admitted(h, "build-1")
    assert condition["reason"] == "DefinitionNotReady"
    assert "is not Ready (InvalidSource: x) after 1m" in condition["message"]
    assert ("Warning", "DefinitionNotReady") in h.events()
    assert h.controller.queue.due_at(key) is not None, "looked at again"
