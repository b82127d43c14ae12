"""Progressive rollouts on the real cluster, driven as GitOps drives them (server-side apply
of the manifest as Git has it): a good revision is promoted to 100 %, one that raises in
half of its runs is rolled back on its own after minInstances, and a sync of Git afterwards
does not undo that; `tenantflow rollout status|promote|abort`; kstatus and Argo CD read each
state.

Which revision an instance runs is the product's documented choice (lifecycle/rollout.py):
its name's bucket against the canary's weight when the instance starts. So the test does
not leave the split to chance: random names put all six of the first batch on the canary
one run in 64, and an instance of a batch that starts after the rollout stepped up to
100 % (which minInstances of its own batch finishing can bring about) runs the canary
whatever its bucket. The first batch has names picked for a known split, with fewer canary
names than minInstances, so the rollout cannot step while it runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from conftest import wait_for
from e2e.conftest import GROUP, VERSION, Tenant, cli
from e2e.test_health import judged
from tenantflow.lifecycle.rollout import bucket

STEPS = [50, 100]
ROLLOUT = {"steps": STEPS, "minInstances": 4, "maxErrorRate": 0.2}
GOOD = """
async def run(event, step):
    return await step.do("work", lambda: {"version": VERSION, "i": event["payload"]["i"]})
"""
HALF_BROKEN = """
async def run(event, step):
    def work():
        if event["payload"]["i"] % 2:
            raise ValueError("v3 breaks odd builds")
        return {"version": 3}
    return await step.do("work", work, retries={"limit": 0})
"""


def good(version: int) -> str:
    return GOOD.replace("VERSION", str(version))


class Git:
    """The definition as a GitOps tool holds it: each sync is a server-side apply."""

    def __init__(self, tenant: Tenant, kubectl: Callable[..., Any]) -> None:
        self.tenant, self.kubectl = tenant, kubectl

    def sync(self, source: str, **spec: Any) -> None:
        manifest = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkflowDefinition",
            "metadata": {"name": "deploy", "namespace": self.tenant.ns},
            "spec": {"source": {"inline": source}, "rollout": ROLLOUT, **spec},
        }
        self.kubectl(
            "apply", "--server-side", "--field-manager=argocd", "-f", "-",
            input=json.dumps(manifest),
        )  # fmt: skip

    def definition(self) -> dict[str, Any]:
        return self.tenant.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.tenant.ns, "workflowdefinitions", "deploy"
        )

    def wait(self, what: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        def now() -> dict[str, Any] | None:
            d = self.definition()
            return d if check(d.get("status") or {}) else None

        return wait_for(now, what, 60)  # type: ignore[return-value]

    def rollout(self, phase: str, revision: int) -> dict[str, Any]:
        return self.wait(
            f"rollout of revision {revision} {phase}",
            lambda st: (
                (st.get("rollout") or {}).get("phase") == phase
                and st["rollout"]["revision"] == revision
            ),
        )


class Run(NamedTuple):
    name: str
    revision: int
    phase: str


def start_named(tenant: Tenant, name: str, params: Any) -> str:
    """Tenant.start with the instance's name chosen by the caller."""
    tenant.custom.create_namespaced_custom_object(
        GROUP, VERSION, tenant.ns, "workflowinstances",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkflowInstance",
            "metadata": {"name": name},
            "spec": {"workflowRef": {"name": "deploy"}, "params": params},
        },
    )  # fmt: skip
    return name


def split_names(canary: int, weight: int, on: int, off: int) -> list[str]:
    """`on` instance names the canary's weight sends to it, then `off` names it does not:
    the same names every run, so the split is the product's hash, not the test's luck."""
    want = {True: on, False: off}
    picked: dict[bool, list[str]] = {True: [], False: []}
    n = 0
    while any(len(picked[side]) < want[side] for side in want):
        name = f"deploy-split-{canary}-{n}"
        side = bucket(name, canary) < weight
        if len(picked[side]) < want[side]:
            picked[side].append(name)
        n += 1
    return picked[True] + picked[False]


def run_batch(tenant: Tenant, n: int, first: int = 0, names: list[str] | None = None) -> list[Run]:
    """Start `n` instances at once (named `names`, else at random), wait for each to
    finish: the revision and phase of each."""
    started = [
        start_named(tenant, names[i], {"i": first + i})
        if names
        else tenant.start("deploy", {"i": first + i})
        for i in range(n)
    ]
    done = [tenant.wait_phase(name, "Complete", "Errored", timeout=90) for name in started]
    return [Run(name, st["revision"], st["phase"]) for name, st in zip(started, done, strict=True)]


def until(
    git: Git, tenant: Tenant, phases: set[str], runs: list[Run] | None = None, batches: int = 8
) -> list[Run]:
    """Batches of instances until the rollout reaches one of `phases`; every run (those
    already in `runs` too)."""
    runs = list(runs or [])
    for _ in range(batches):
        runs += run_batch(tenant, 6, first=len(runs))
        seen = list(runs)
        git.wait("the rollout to count them", lambda st, seen=seen: _counted(st, seen))
        if (git.definition()["status"].get("rollout") or {}).get("phase") in phases:
            return runs
    raise AssertionError(f"rollout not in {phases} after {len(runs)} instances: {runs}")


def _counted(status: dict[str, Any], runs: list[Run]) -> bool:
    roll = status.get("rollout") or {}
    canary = [run for run in runs if run.revision == roll.get("revision")]
    return roll.get("phase") != "Progressing" or (
        roll.get("complete", 0) + roll.get("errored", 0) >= len(canary)
    )


def test_a_good_revision_is_promoted_and_a_failing_one_rolled_back(
    tenant: Tenant, kubectl: Callable[..., Any], kubeconfig: Path
) -> None:
    git = Git(tenant, kubectl)
    git.sync(good(1))
    git.wait("revision 1 stable", lambda st: st.get("stableRevision") == 1)

    # a good revision: canary at 50 %, then 100 %, then stable
    git.sync(good(2))
    progressing = git.rollout("Progressing", 2)
    assert progressing["status"]["activeRevision"] == 1
    assert judged(progressing) == ["InProgress"]
    # the first batch at 50 %: three names the canary's weight picks, three it does not;
    # three canary runs are fewer than minInstances, so the weight stays 50 % for all six
    weight = STEPS[0]
    names = split_names(2, weight, on=3, off=3)
    first = run_batch(tenant, 6, names=names)
    expected = [2 if bucket(name, 2) < weight else 1 for name in names]
    assert [run.revision for run in first] == expected, f"split by name at {weight}%: {first}"
    at_50 = git.wait("the rollout to count them", lambda st: _counted(st, first))["status"]
    assert (at_50["rollout"]["weight"], at_50["rollout"]["complete"]) == (weight, 3), at_50
    runs = until(git, tenant, {"Promoted"}, runs=first)
    assert {run.revision for run in runs} == {1, 2}, "both ran during the rollout"
    # the weight only rises (50 %, then 100 %): a name the canary had at 50 % always ran it;
    # one it did not have ran the stable revision, or the canary if it started after the step
    assert all(run.revision == 2 for run in runs if bucket(run.name, 2) < weight), runs
    assert all(run.phase == "Complete" for run in runs)
    promoted = git.definition()
    assert promoted["status"]["stableRevision"] == 2 and judged(promoted) == ["Current"]
    shown = cli(kubeconfig, "-n", tenant.ns, "rollout", "status", "deploy", "--wait")
    assert "revision 2 (from 1) Promoted, 100% of new instances" in shown.stdout

    # a revision that raises in half of its runs: rolled back after minInstances
    git.sync(HALF_BROKEN)
    git.rollout("Progressing", 3)
    runs = until(git, tenant, {"RolledBack"})
    rolled = git.definition()
    roll = rolled["status"]["rollout"]
    assert roll["errored"] + roll["complete"] >= ROLLOUT["minInstances"]
    assert roll["errored"] / (roll["errored"] + roll["complete"]) > ROLLOUT["maxErrorRate"]
    assert (3, "Errored") in {(run.revision, run.phase) for run in runs}
    assert rolled["status"]["activeRevision"] == 2
    assert judged(rolled) == ["Failed"]
    failed = cli(kubeconfig, "-n", tenant.ns, "rollout", "status", "deploy", "--wait", check=False)
    assert failed.returncode == 1 and "rolled back to revision 2" in failed.stderr
    reasons = {
        e.reason for e in tenant.core.list_namespaced_event(tenant.ns).items
        if e.involved_object.name == "deploy"
    }  # fmt: skip
    assert {"RolloutStarted", "RolloutPromoted", "RolloutRolledBack"} <= reasons
    assert {run.revision for run in run_batch(tenant, 6)} == {2}, "new ones run stable"

    # Git syncs the same manifest again: the rollback stays; Git's own pin still wins
    git.sync(HALF_BROKEN)
    again = git.definition()
    assert again["status"]["rollout"]["phase"] == "RolledBack"
    assert again["status"]["activeRevision"] == 2 and "pinnedRevision" not in again["spec"]
    git.sync(HALF_BROKEN, pinnedRevision=1)
    git.wait("Git's pin", lambda st: st.get("activeRevision") == 1)
    git.sync(HALF_BROKEN)
    git.wait("the pin gone", lambda st: st.get("activeRevision") == 2)

    # the CLI steers a rollout without touching the spec
    git.sync(good(4))
    git.rollout("Progressing", 4)
    aborted = cli(kubeconfig, "-n", tenant.ns, "rollout", "abort", "deploy")
    assert "revision 4 (from 2) Aborted" in aborted.stdout
    cli(kubeconfig, "-n", tenant.ns, "rollout", "promote", "deploy")
    git.rollout("Progressing", 4)
    cli(kubeconfig, "-n", tenant.ns, "rollout", "promote", "deploy", "--full")
    done = git.rollout("Promoted", 4)
    assert done["status"]["stableRevision"] == 4 and done["spec"]["source"]["inline"] == good(4)
    none = cli(kubeconfig, "-n", tenant.ns, "rollout", "abort", "deploy", check=False)
    assert none.returncode == 1 and "only one that is Progressing or Paused" in none.stderr
