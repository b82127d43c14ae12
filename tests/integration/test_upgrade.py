"""An upgrade with instances in flight (issue 39.2): the previous release (v0.1.0, its
chart and the images its own code builds, `previous.py`) installed by Helm in pods on the
dev node drives a tenant's instances; `helm upgrade` to this tree while one sleeps, one
waits for an event, one runs a long step, a parent waits for its children and a schedule
fires; every instance completes with its output and no step that completed runs again,
and the schedule keeps its pace. Then `helm rollback` to the release, with the same
checks for instances started by this tree.

The CRDs stay this tree's (the suite applies them): an upgrade applies the new CRDs first
and a rollback keeps them (docs/operations.md, "Upgrades"), so the release's operator runs
against CRDs newer than its own, as it would after a rollback; its API version
(`v1alpha1`) is still served. The session's own operator process is stopped meanwhile, and
the installed chart's is set aside (`set_aside.py`), so that only the chart's pods under
test drive the tenant: the test checks that one of them holds the tenant's shard."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT, OperatorProcess, wait_for
from tenantflow.cli.main import main as cli
from tenantflow.owners import controller_name
from tenantflow.testing.devcluster import DevCluster, images, previous, versions
from tenantflow.vocabulary import API_VERSION, SCHEDULE, SHARD_LABEL

pytestmark = pytest.mark.slow
CHART = ROOT / "charts" / "tenantflow"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
LEASES = "tenantflow-system"
EVERY = 15  # seconds between the schedule's runs

SOURCE = """
import asyncio
import time

def counted(env, name, value):
    env.db.execute("INSERT INTO bodies VALUES (?, ?, ?)", (env.instance_id, name, time.time()))
    return value

def runs(env):
    rows = env.db.query(
        "SELECT name, count(*) AS n FROM bodies WHERE instance = ? GROUP BY name",
        (env.instance_id,),
    )
    return {r["name"]: r["n"] for r in rows}

async def run(event, step, env):
    env.db.execute("CREATE TABLE IF NOT EXISTS bodies (instance TEXT, name TEXT, at REAL)")
    kind = event["payload"]["kind"]
    if kind == "sleeper":
        a = await step.do("a", lambda: counted(env, "a", 1))
        await step.sleep("nap", event["payload"]["nap"])
        b = await step.do("b", lambda: counted(env, "b", 2))
        out = [a, b]
    elif kind == "waiter":
        got = await step.wait_for_event("go", type="go", timeout="1h")
        out = await step.do("after", lambda: counted(env, "after", got["payload"]))
    elif kind == "long":
        def long():
            counted(env, "long-started", None)
            time.sleep(40)
            return counted(env, "long", "slept")
        slept = await step.do("long", long, timeout="2m", retries={"limit": 5, "delay": "1s"})
        first = env.db.query(
            "SELECT min(at) AS at FROM bodies WHERE instance = ? AND name = 'long-started'",
            (env.instance_id,),
        )
        out = [slept, first[0]["at"]]
    elif kind == "parent":
        out = await asyncio.gather(
            *(
                step.child(f"kid-{i}", "upgrade", {"kind": "sleeper", "nap": "60s"})
                for i in range(2)
            )
        )
    else:
        out = await step.do("tick", lambda: counted(env, "tick", "tock"))
    return {"out": out, "runs": runs(env)}
"""


def helm(kubeconfig: Path, *args: str) -> str:
    done = subprocess.run(
        [str(versions.bin_dir() / "helm"), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def only_the_chart(operator_process: OperatorProcess) -> Iterator[None]:
    """The session's operator process stopped for the test (and started again after)."""
    operator_process.stop()
    try:
        yield
    finally:
        operator_process.start()


class Cluster:
    """What the test reads and writes, through kubectl as the admin."""

    def __init__(self, kubectl: Kubectl, kubeconfig: Path, ns: str, tenant: str) -> None:
        self.k, self.kubeconfig, self.ns, self.tenant = kubectl, kubeconfig, ns, tenant
        self.tns = f"tenant-{tenant}"

    def apply(self, *docs: dict[str, Any]) -> None:
        self.k("apply", "-f", "-", input=yaml.safe_dump_all(docs))

    def start(self, name: str, params: dict[str, Any]) -> str:
        self.apply(
            {
                "apiVersion": API_VERSION,
                "kind": "WorkflowInstance",
                "metadata": {"name": name, "namespace": self.tns},
                "spec": {"workflowRef": {"name": "upgrade"}, "params": params},
            }
        )
        return name

    def instances(self) -> dict[str, dict[str, Any]]:
        out = self.k("get", "wfi", "-n", self.tns, "-o", "json").stdout
        return {i["metadata"]["name"]: i for i in json.loads(out)["items"]}

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.instances()[name].get("status") or {})

    def pods(self) -> set[str]:
        out = self.k("get", "pods", "-n", self.ns, "-o", "jsonpath={.items[*].metadata.name}")
        return set(out.stdout.split())

    def rolled_out(self, image: str) -> bool:
        """Both replicas ready, every pod of the chart's Deployment on `image`."""
        got = json.loads(
            self.k("get", "deployment", "tf-operator", "-n", self.ns, "-o", "json").stdout
        )
        st = got.get("status") or {}
        pods = json.loads(self.k("get", "pods", "-n", self.ns, "-o", "json").stdout)["items"]
        return (
            st.get("updatedReplicas") == st.get("readyReplicas") == st.get("replicas") == 2
            and len(pods) == 2
            and all(p["spec"]["containers"][0]["image"].endswith(image) for p in pods)
        )

    def shard_holder(self) -> str:
        labels = json.loads(self.k("get", "namespace", self.tns, "-o", "json").stdout)["metadata"]
        shard = (labels.get("labels") or {}).get(SHARD_LABEL)
        lease = self.k(
            "get",
            "lease",
            f"tenantflow-shard-{shard}",
            "-n",
            LEASES,
            "-o",
            "jsonpath={.spec.holderIdentity}",
            check=False,
        )
        return lease.stdout.strip()

    def wait_driven_by_chart(self) -> None:
        wait_for(
            lambda: self.shard_holder() in self.pods(),
            "the tenant's shard held by one of the chart's pods",
            120,
        )

    def send_event(self, name: str, payload: Any) -> None:
        argv = ["--kubeconfig", str(self.kubeconfig), "-n", self.tns, "send-event", name, "go"]
        assert cli([*argv, "--payload", json.dumps(payload)]) == 0

    def finished(self, names: list[str], timeout: float = 240) -> dict[str, dict[str, Any]]:
        def done() -> dict[str, dict[str, Any]] | None:
            now = self.instances()
            phases = {n: (now[n].get("status") or {}).get("phase") for n in names}
            if all(p in ("Complete", "Errored", "Terminated") for p in phases.values()):
                return {n: now[n]["status"] for n in names}
            return None

        return wait_for(done, f"{names} finished", timeout)  # type: ignore[return-value]

    def ticks(self) -> list[dt.datetime]:
        """When each of the schedule's runs was created, oldest first."""
        return sorted(
            dt.datetime.fromisoformat(i["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
            for i in self.instances().values()
            if controller_name(i, SCHEDULE) == "tick"
        )


def _waiting_in(c: Cluster, name: str, step: str) -> Callable[[], bool]:
    return lambda: (c.status(name).get("waitingFor") or {}).get("step") == step


def _in_flight(c: Cluster, tag: str) -> dict[str, str]:
    """Instances mid-sleep, waiting for an event, in a long step and waiting for children."""
    names = {
        "long": c.start(f"long-{tag}", {"kind": "long"}),
        "sleeper": c.start(f"sleeper-{tag}", {"kind": "sleeper", "nap": "75s"}),
        "waiter": c.start(f"waiter-{tag}", {"kind": "waiter"}),
        "parent": c.start(f"parent-{tag}", {"kind": "parent"}),
    }
    wait_for(_waiting_in(c, names["sleeper"], "nap"), f"{names['sleeper']} asleep", 120)
    wait_for(_waiting_in(c, names["waiter"], "go"), f"{names['waiter']} waiting", 120)
    wait_for(
        lambda: (c.status(names["parent"]).get("waitingFor") or {}).get("child"),
        f"{names['parent']} waiting for its children",
        120,
    )
    return names


def _check(c: Cluster, names: dict[str, str], payload: str, changed_at: dt.datetime) -> None:
    """Every one Complete with its output; each step that completed ran once; the long
    step's body had started before the operator was changed (`changed_at`)."""
    c.send_event(names["waiter"], payload)
    done = c.finished(list(names.values()))
    phases = {n: st["phase"] for n, st in done.items()}
    assert set(phases.values()) == {"Complete"}, (phases, done)
    out = {kind: done[n]["output"] for kind, n in names.items()}
    assert out["sleeper"] == {"out": [1, 2], "runs": {"a": 1, "b": 1}}
    assert out["waiter"] == {"out": payload, "runs": {"after": 1}}
    long_runs = out["long"]["runs"]
    slept, first_start = out["long"]["out"]
    assert slept == "slept" and long_runs["long"] == 1, out["long"]
    assert first_start < changed_at.timestamp(), ("in flight when the operator changed", out)
    # a body cut before it ended (its sandbox pod replaced) may start again, never complete twice
    assert long_runs["long-started"] >= 1
    kids = out["parent"]["out"]
    assert [k["out"] for k in kids] == [[1, 2], [1, 2]], kids
    assert all(k["runs"] == {"a": 1, "b": 1} for k in kids), kids


def _paced(ticks: list[dt.datetime], since: dt.datetime) -> None:
    """Runs went on after `since`, none late by more than an interval (plus the time an
    operator takes to take over: the shard's Lease runs out, about 15 s)."""
    later = [t for t in ticks if t > since]
    assert later, f"no run after {since}: {ticks}"
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ticks)]
    assert max(gaps) <= 2 * EVERY + 20, gaps


def test_upgrade_and_rollback_with_instances_in_flight(
    kubeconfig: Path, crds: Path, kubectl: Kubectl, only_the_chart: None
) -> None:
    assert DevCluster().has_node(), "the upgrade test needs the dev cluster's real node"
    release = previous.prepare()
    new_values = images.chart_values()
    assert release.version != images.project_version(), "the tree names the next version"
    ns, tenant = f"tf-up-{uuid.uuid4().hex[:6]}", f"up-{uuid.uuid4().hex[:6]}"
    c = Cluster(kubectl, kubeconfig, ns, tenant)
    common = ["-n", ns, "--wait", "--timeout", "180s", "--skip-crds"]
    try:
        helm(
            kubeconfig,
            "install",
            "tf",
            str(release.chart),
            "--create-namespace",
            *common,
            *release.values,
        )
        wait_for(lambda: c.rolled_out(f"operator:{release.version}"), "the release's pods", 120)
        c.apply(
            {
                "apiVersion": API_VERSION,
                "kind": "Tenant",
                "metadata": {"name": tenant},
                "spec": {"limits": {"maxStepTimeoutSeconds": 120}},
            }
        )
        wait_for(
            lambda: (
                kubectl("get", "tenant", tenant, "-o", "jsonpath={.status.phase}").stdout == "Ready"
            ),
            "the tenant Ready, provisioned by the release",
            180,
        )
        c.wait_driven_by_chart()
        c.apply(
            {
                "apiVersion": API_VERSION,
                "kind": "WorkflowDefinition",
                "metadata": {"name": "upgrade", "namespace": c.tns},
                "spec": {"source": {"inline": SOURCE}},
            },
            {
                "apiVersion": API_VERSION,
                "kind": "WorkflowSchedule",
                "metadata": {"name": "tick", "namespace": c.tns},
                "spec": {
                    "schedule": f"@every {EVERY}s",
                    "workflowRef": {"name": "upgrade"},
                    "params": {"kind": "tick"},
                    "successfulRunsHistoryLimit": 100,
                },
            },
        )
        before = _in_flight(c, "a")
        wait_for(lambda: len(c.ticks()) >= 2, "the schedule running under the release", 90)

        upgraded_at = dt.datetime.now(dt.UTC)
        helm(kubeconfig, "upgrade", "tf", str(CHART), *common, *new_values)
        wait_for(lambda: c.rolled_out(f"operator:{images.project_version()}"), "the upgrade", 180)
        c.wait_driven_by_chart()
        _check(c, before, "after the upgrade", upgraded_at)
        wait_for(
            lambda: c.ticks()[-1] > upgraded_at + dt.timedelta(seconds=EVERY),
            "a run after the upgrade",
            90,
        )
        _paced(c.ticks(), upgraded_at)

        during = _in_flight(c, "b")  # started by this tree, finished by the release
        rolled_back_at = dt.datetime.now(dt.UTC)
        helm(kubeconfig, "rollback", "tf", "1", "-n", ns, "--wait", "--timeout", "180s")
        wait_for(lambda: c.rolled_out(f"operator:{release.version}"), "the rollback", 180)
        c.wait_driven_by_chart()
        _check(c, during, "after the rollback", rolled_back_at)
        wait_for(
            lambda: c.ticks()[-1] > rolled_back_at + dt.timedelta(seconds=EVERY),
            "a run after the rollback",
            90,
        )
        _paced(c.ticks(), rolled_back_at)
    finally:
        kubectl("delete", "tenant", tenant, "--wait=false", check=False)
        subprocess.run(
            [
                *(str(versions.bin_dir() / "helm"), f"--kubeconfig={kubeconfig}", "uninstall"),
                *("tf", "-n", ns, "--wait", "--timeout", "120s"),
            ],
            capture_output=True,
            check=False,
        )
        kubectl("delete", "namespace", ns, "--wait=false", check=False)
