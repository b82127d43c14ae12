"""Rollouts through the real definition and instance controllers (in-memory API, the real
engine in-process): instances pick the canary by name, a good revision is promoted step by
step, a failing one is rolled back with a Stalled condition and an Event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tenantflow.controllers import definition
from tenantflow.controllers.persist import Persist
from tenantflow.kube.events import EventRecorder
from tenantflow.vocabulary import API_VERSION, DEFINITION
from tests.unit.controllers.harness import NS, Harness

GOOD = "async def run(event, step):\n    return {'v': %d}\n"
BAD = "async def run(event, step):\n    raise ValueError('bug in v2')\n"
ROLLOUT = {"steps": [50, 100], "minInstances": 4, "maxErrorRate": 0.2}


async def apply(h: Harness, source: str, **spec: Any) -> dict[str, Any]:
    """Apply the definition as Git has it and reconcile; returns its status."""
    body = h.kube.read(API_VERSION, DEFINITION, "flow", NS) or {
        "apiVersion": API_VERSION,
        "kind": DEFINITION,
        "metadata": {"name": "flow", "namespace": NS, "uid": "uid-flow"},
    }
    body["spec"] = {"source": {"inline": source}, **spec}
    h.kube.put(body)
    return await reconcile(h)


async def reconcile(h: Harness) -> dict[str, Any]:
    h.revisions.forget_definition(NS, "flow")  # as the definition controller's watch does
    await definition.reconcile(h.kube, EventRecorder(h.kube), Persist(h.kube), f"{NS}/flow")
    return dict(h.kube.read(API_VERSION, DEFINITION, "flow", NS)["status"])


async def run_batch(h: Harness, prefix: str, n: int) -> list[tuple[int, str]]:
    """Start and finish `n` instances; (revision, phase) of each, then the definition
    counts them."""
    runs = []
    for i in range(n):
        key = h.start(f"{prefix}-{i}", "flow")
        await h.drive(key, times=2)
        st = h.status(f"{prefix}-{i}")
        runs.append((st["revision"], st["phase"]))
    await reconcile(h)
    return runs


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


async def test_a_good_revision_is_promoted_step_by_step(tmp_path: Path) -> None:
    h = Harness.new(tmp_path, maxInstanceStartsPerSecond=1000)
    await apply(h, GOOD % 1, rollout=ROLLOUT)
    status = await apply(h, GOOD % 2, rollout=ROLLOUT)
    assert (status["activeRevision"], status["rollout"]["weight"]) == (1, 50)
    assert conditions(status)["Reconciling"] == ("True", "RolloutProgressing")
    runs = await run_batch(h, "a", 12)
    assert {r for r, _ in runs} == {1, 2}, "half of the new instances run the canary"
    assert all(phase == "Complete" for _, phase in runs)
    status = await reconcile(h)
    assert status["rollout"]["weight"] == 100, status["rollout"]
    await run_batch(h, "b", 4)
    status = await reconcile(h)
    assert (status["rollout"]["phase"], status["stableRevision"]) == ("Promoted", 2)
    assert status["activeRevision"] == 2 and conditions(status)["Ready"][0] == "True"
    assert {r for r, _ in await run_batch(h, "c", 6)} == {2}
    reasons = [reason for _, reason in h.events()]
    assert reasons.count("RolloutStepped") == 1 and "RolloutPromoted" in reasons


async def test_a_failing_revision_is_rolled_back_and_new_instances_run_the_stable_one(
    tmp_path: Path,
) -> None:
    h = Harness.new(tmp_path, maxInstanceStartsPerSecond=1000)
    await apply(h, GOOD % 1, rollout=ROLLOUT)
    await apply(h, BAD, rollout=ROLLOUT)
    runs = await run_batch(h, "a", 16)
    assert (2, "Errored") in runs and (1, "Complete") in runs
    status = await reconcile(h)
    roll = status["rollout"]
    assert (roll["phase"], roll["weight"], status["activeRevision"]) == ("RolledBack", 0, 1)
    assert conditions(status)["Stalled"] == ("True", "RolloutRolledBack")
    assert "tenantflow rollout promote" in roll["message"]
    assert ("Warning", "RolloutRolledBack") in h.events()
    assert {r for r, _ in await run_batch(h, "b", 8)} == {1}
    # Git applies the same manifest again: the rollback holds, the spec is untouched
    status = await apply(h, BAD, rollout=ROLLOUT)
    assert (status["rollout"]["phase"], status["activeRevision"]) == ("RolledBack", 1)
    # Git pins a revision: it wins, and the definition is Ready with it
    status = await apply(h, BAD, rollout=ROLLOUT, pinnedRevision=2)
    assert status["activeRevision"] == 2 and conditions(status)["Ready"][0] == "True"
    # a fix is a new revision, rolled out afresh
    status = await apply(h, GOOD % 3, rollout=ROLLOUT)
    roll = status["rollout"]
    assert (roll["revision"], roll["fromRevision"], roll["phase"]) == (3, 1, "Progressing")


async def test_an_abort_from_the_cli_is_applied_once_and_a_bad_command_stalls(
    tmp_path: Path,
) -> None:
    h = Harness.new(tmp_path, maxInstanceStartsPerSecond=1000)
    await apply(h, GOOD % 1, rollout=ROLLOUT)
    await apply(h, GOOD % 2, rollout=ROLLOUT)
    body = h.kube.read(API_VERSION, DEFINITION, "flow", NS)
    command = '{"action": "abort", "revision": 2, "id": "cmd-1"}'
    body["metadata"]["annotations"] = {"tenantflow.dev/rollout-command": command}
    h.kube.put(body)
    status = await reconcile(h)
    assert (status["rollout"]["phase"], status["rollout"]["lastCommand"]) == ("Aborted", "cmd-1")
    assert conditions(status)["Stalled"] == ("True", "RolloutAborted")
    body = h.kube.read(API_VERSION, DEFINITION, "flow", NS)
    body["metadata"]["annotations"] = {"tenantflow.dev/rollout-command": "promote please"}
    h.kube.put(body)
    status = await reconcile(h)
    stalled = {c["type"]: c for c in status["conditions"]}["Stalled"]
    assert stalled["reason"] == "RolloutCommandInvalid"
    assert "tenantflow rollout promote|abort" in stalled["message"]
    assert status["rollout"]["phase"] == "Aborted", "nothing applied"
