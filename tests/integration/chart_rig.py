"""What the chart tests with instances in flight share: a workload with a step body
that counts its runs in the tenant's store (a sleeper, an event waiter, a 40 s step, a
parent of two children, a schedule's tick), the cluster as the admin sees it through
kubectl, and the checks that every instance completed with its output and no step that
completed ran again (the upgrade test, the operator pod faults)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from conftest import ROOT, wait_for
from tenantflow.cli.main import main as cli
from tenantflow.owners import controller_name
from tenantflow.vocabulary import API_VERSION, SCHEDULE, SHARD_LABEL
from tenantflow_dev.devcluster import versions

CHART = ROOT / "charts" / "tenantflow"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
LEASES = "tenantflow-system"
EVERY = 15  # seconds between the schedule's runs
DEFINITION = "inflight"

WORKLOAD = """
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
                step.child(f"kid-{i}", DEFINITION, {"kind": "sleeper", "nap": "60s"})
                for i in range(2)
            )
        )
    else:
        out = await step.do("tick", lambda: counted(env, "tick", "tock"))
    return {"out": out, "runs": runs(env)}
""".replace("DEFINITION", repr(DEFINITION))


def helm(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The dev cluster's Helm (built with the control plane)."""
    done = subprocess.run(
        [str(versions.bin_dir() / "helm"), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert not check or done.returncode == 0, done.stderr
    return done


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
                "spec": {"workflowRef": {"name": DEFINITION}, "params": params},
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


def waiting_in(c: Cluster, name: str, step: str) -> Callable[[], bool]:
    return lambda: (c.status(name).get("waitingFor") or {}).get("step") == step


def in_flight(c: Cluster, tag: str) -> dict[str, str]:
    """Instances mid-sleep, waiting for an event, in a long step and waiting for children."""
    names = {
        "long": c.start(f"long-{tag}", {"kind": "long"}),
        "sleeper": c.start(f"sleeper-{tag}", {"kind": "sleeper", "nap": "75s"}),
        "waiter": c.start(f"waiter-{tag}", {"kind": "waiter"}),
        "parent": c.start(f"parent-{tag}", {"kind": "parent"}),
    }
    wait_for(waiting_in(c, names["sleeper"], "nap"), f"{names['sleeper']} asleep", 120)
    wait_for(waiting_in(c, names["waiter"], "go"), f"{names['waiter']} waiting", 120)
    wait_for(
        lambda: (c.status(names["parent"]).get("waitingFor") or {}).get("child"),
        f"{names['parent']} waiting for its children",
        120,
    )
    return names


def check_finished(
    c: Cluster, names: dict[str, str], payload: str, changed_at: dt.datetime
) -> None:
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
    long_status = {k: done[names["long"]].get(k) for k in ("steps", "lostAttempts", "conditions")}
    assert slept == "slept" and long_runs["long"] == 1, (out["long"], long_status)
    assert first_start < changed_at.timestamp(), ("in flight when the operator changed", out)
    # a body cut before it ended (its sandbox pod replaced) may start again, never complete twice
    assert long_runs["long-started"] >= 1
    kids = out["parent"]["out"]
    assert [k["out"] for k in kids] == [[1, 2], [1, 2]], kids
    assert all(k["runs"] == {"a": 1, "b": 1} for k in kids), kids


def paced(ticks: list[dt.datetime], since: dt.datetime) -> None:
    """Runs went on after `since`, none late by more than an interval (plus the time an
    operator takes to take over: the shard's Lease runs out, about 15 s)."""
    later = [t for t in ticks if t > since]
    assert later, f"no run after {since}: {ticks}"
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ticks)]
    assert max(gaps) <= 2 * EVERY + 20, gaps


def provision(c: Cluster) -> None:
    """The tenant (Ready, driven by one of the chart's pods), the definition and the
    schedule ticking every EVERY seconds."""
    c.apply(
        {
            "apiVersion": API_VERSION,
            "kind": "Tenant",
            "metadata": {"name": c.tenant},
            "spec": {"limits": {"maxStepTimeoutSeconds": 120}},
        }
    )
    wait_for(
        lambda: c.k("get", "tenant", c.tenant, "-o", "jsonpath={.status.phase}").stdout == "Ready",
        "the tenant Ready, provisioned by the chart's operator",
        180,
    )
    c.wait_driven_by_chart()
    c.apply(
        {
            "apiVersion": API_VERSION,
            "kind": "WorkflowDefinition",
            "metadata": {"name": DEFINITION, "namespace": c.tns},
            "spec": {"source": {"inline": WORKLOAD}},
        },
        {
            "apiVersion": API_VERSION,
            "kind": "WorkflowSchedule",
            "metadata": {"name": "tick", "namespace": c.tns},
            "spec": {
                "schedule": f"@every {EVERY}s",
                "workflowRef": {"name": DEFINITION},
                "params": {"kind": "tick"},
                "successfulRunsHistoryLimit": 100,
            },
        },
    )


def install(c: Cluster, chart: Path | str, *values: str) -> None:
    """The chart as release `tf` in the test's namespace, CRDs left to the suite (this
    tree's, applied already), waiting for its pods."""
    helm(
        c.kubeconfig,
        "install",
        "tf",
        str(chart),
        "--create-namespace",
        *("-n", c.ns, "--wait", "--timeout", "180s", "--skip-crds"),
        *values,
    )


def uninstall(c: Cluster, release: str = "tf") -> None:
    """The tenant, the release and its namespace gone (best effort: a cleanup)."""
    c.k("delete", "tenant", c.tenant, "--wait=false", check=False)
    helm(c.kubeconfig, "uninstall", release, "-n", c.ns, "--wait", "--timeout", "120s", check=False)
    c.k("delete", "namespace", c.ns, "--wait=false", check=False)
