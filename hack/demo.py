"""`make demo`: local control plane + operator + example tenants and workflows, with progress.

Leaves everything running so you can explore with kubectl; `make down` stops it all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tenantflow.observability.logging import configure
from tenantflow_dev.devcluster import DevCluster, images, versions
from tenantflow_dev.devcluster.operator_process import OperatorProcess

ROOT = Path(__file__).resolve().parent.parent
FINISHED = {"Complete", "Errored", "Terminated"}
OPERATOR_NS = "tenantflow-system"


def step(msg: str) -> None:
    print(f"\n\033[1;34m==>\033[0m \033[1m{msg}\033[0m", flush=True)


class Kubectl:
    def __init__(self, kubeconfig: Path) -> None:
        self.base = [str(versions.bin_dir() / "kubectl"), f"--kubeconfig={kubeconfig}"]

    def __call__(self, *args: str, check: bool = True) -> str:
        result = subprocess.run([*self.base, *args], capture_output=True, text=True)
        if check and result.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def json(self, *args: str) -> dict:  # type: ignore[type-arg]
        return json.loads(self(*args, "-o", "json"))


def wait(what: str, check, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(1)


def main() -> int:
    configure()
    step(
        "Starting the local cluster: etcd, kube-apiserver, controllers, a kubelet node "
        "(containerd, kube-proxy, kube-router) and kwok; the first run builds the images"
    )
    cluster = DevCluster()
    kubeconfig = cluster.up()
    k = Kubectl(kubeconfig)
    print(k("get", "nodes", "-o", "wide"), end="")
    step("Installing the tenantflow CRDs")
    print(k("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")), end="")
    k("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")

    if cluster.has_node():
        step("Installing the operator with its Helm chart (images built here, pods on the node)")
        helm = str(versions.bin_dir() / "helm")
        subprocess.run(
            [
                *(helm, f"--kubeconfig={kubeconfig}", "upgrade", "--install", "tenantflow"),
                *(str(ROOT / "charts" / "tenantflow"), "-n", OPERATOR_NS, "--create-namespace"),
                *("--wait", "--timeout", "180s", *images.chart_values()),
            ],
            check=True,
        )
        print(k("get", "pods", "-n", OPERATOR_NS, "-o", "wide"), end="")
        print(f"  logs: kubectl -n {OPERATOR_NS} logs deploy/tenantflow-operator")
    else:
        step("Starting the operator as a local process (no node: sandboxes are local jails)")
        already = f"--kubeconfig {cluster.kubeconfig} operator"
        subprocess.run(["pkill", "-f", "--", already], check=False)
        op = OperatorProcess(
            cluster.kubeconfig, cluster.dir / "logs" / "operator.log", metrics_port=18080
        )
        op.start()
        print(f"  logs: {op.log_path}; metrics: http://127.0.0.1:18080/metrics")

    step("Creating the example tenants: acme and globex")
    print(k("apply", "-f", str(ROOT / "examples" / "tenants")), end="")
    wait(
        "tenants Ready",
        lambda: all(
            (t.get("status") or {}).get("phase") == "Ready"
            for t in k.json("get", "tenants")["items"]
        ),
    )
    print(k("get", "tenants"), end="")
    if cluster.has_node():
        wait("the tenants' sandbox pods Ready", lambda: sandboxes_ready(k))
    print(
        k("get", "pods,pvc,networkpolicy,resourcequota", "-n", "tenant-acme", "-o", "wide"), end=""
    )

    step(
        "Submitting the example workflows: CI pipeline, agent with approval, saga, data sync, "
        "a release that builds three services as child workflows (and its nightly schedule), "
        "a TypeScript workflow in Cloudflare Workflows' shape"
    )
    examples = ("ci-pipeline", "agent-approval", "order-saga", "data-sync", "release-train")
    for example in (*examples, "typescript-workflow"):
        print(k("apply", "-f", str(ROOT / "examples" / example)), end="")
    waiting = lambda phases: all(p in FINISHED or p == "Waiting" for p in phases.values())  # noqa: E731
    # six instances, and the release's three children
    show_progress(k, until=lambda phases: len(phases) == 10 and waiting(phases))

    step("Two instances wait for a human: sending them the 'approved' event")
    events = json.dumps({"spec": {"events": [{"type": "approved", "payload": {"by": "bob"}}]}})
    for name in ("build-1", "agent-run-1"):
        print(k("patch", "wfi", name, "-n", "tenant-acme", "--type=merge", "-p", events), end="")
    show_progress(k, until=lambda phases: all(p in FINISHED for p in phases.values()))

    step("The journal of build-1 (status.steps)")
    inst = k.json("get", "wfi", "build-1", "-n", "tenant-acme")
    for s in inst["status"]["steps"]:
        print(f"  {s['name']:<12} {s['kind']:<6} {s['state']:<9} attempts={s['attempts']}")
    print(f"  output: {json.dumps(inst['status'].get('output'))}")
    step("Outputs")
    for item in k.json("get", "wfi", "-A")["items"]:
        st = item["status"]
        print(
            f"  {item['metadata']['name']:<12} {st['phase']:<9} "
            f"{json.dumps(st.get('output', st.get('error')))[:90]}"
        )

    step("Done: everything keeps running")
    print(
        f"export KUBECONFIG={kubeconfig}\n"
        "kubectl get tenantflow -A       # tenants, definitions, instances, schedules\n"
        ".venv/bin/tenantflow -n tenant-acme history build-1   # the journal, via the CLI\n"
        ".venv/bin/tenantflow ui                       # the web UI (open the URL it prints)\n"
        "make down                       # stop the operator and the control plane"
    )
    return 0


def sandboxes_ready(k: Kubectl) -> bool:
    pods = k.json("get", "pods", "-A", "-l", "app.kubernetes.io/name=sandbox")["items"]
    statuses = [(p.get("status") or {}).get("containerStatuses") or [] for p in pods]
    return len(pods) >= 2 and all(s and all(c.get("ready") for c in s) for s in statuses)


def show_progress(k: Kubectl, until) -> None:  # type: ignore[no-untyped-def]
    """Print the instance table whenever it changes, until `until(phases)` holds."""
    last = ""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        items = k.json("get", "wfi", "-A")["items"]
        phases = {i["metadata"]["name"]: (i.get("status") or {}).get("phase") for i in items}
        progress = str(
            sorted(
                (n, p, len((i.get("status") or {}).get("steps") or []))
                for (n, p), i in zip(phases.items(), items, strict=True)
            )
        )
        if progress != last:
            print(f"--- {time.strftime('%H:%M:%S')}\n{k('get', 'wfi', '-A')}", end="", flush=True)
            last = progress
        if items and until(phases):
            return
        time.sleep(1)
    raise SystemExit("the workflows did not finish in time; see the operator log")


if __name__ == "__main__":
    sys.exit(main())
