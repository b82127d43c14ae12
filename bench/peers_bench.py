"""tenantflow side by side with Temporal and DBOS, and the API server's own ceiling, in one
invocation on one machine (`make bench-peers`; never part of `make test`).

    BENCH_PEERS_INSTANCES=2000 python -m bench peers

Workload A: N three-step no-op instances, 50 starts in flight from one client -> starts/s
and completions/s. Workload B: N instances sleeping 10 minutes -> seconds until all are
durably waiting, and the memory of every process that holds them. The ceiling: the same
N creates plus one status merge-patch of the size tenantflow writes, by a minimal client
(no engine, no sandbox, no operator) -> what the API server alone allows for this write
pattern, and tenantflow's fraction of it. bench/README.md says what is unfair about each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.cluster import ROOT, kubectl, operator_on_dev_cluster, sandbox_cpu
from bench.machine import write
from bench.scale_bench import _rss_mib, sleepers
from bench.throughput_bench import measure, three_step_tenant
from tenantflow.kube.client import Kube
from tenantflow.vocabulary import API_VERSION, GROUP, INSTANCE
from tenantflow_dev.devcluster.process import free_port

PEERS = ROOT / "bench" / "peers"
TEMPORAL_CLI = "v1.5.1"  # bench/peers/setup.sh says why this one
IN_FLIGHT = 50


def setup() -> Path:
    """Build or find the peers (cached): their cache directory."""
    done = subprocess.run([str(PEERS / "setup.sh")], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"bench/peers/setup.sh failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def _json(argv: list[str], timeout: float = 1800) -> dict[str, Any]:
    """A peer script's JSON answer; one retry (a peer that fails twice fails the run)."""
    for _ in range(2):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if not done.returncode:
            break
        print(f"  {argv[-5:]} exited {done.returncode}: {done.stderr[-500:]}", flush=True)
    if done.returncode:
        raise RuntimeError(f"{argv[-5:]} exited {done.returncode}:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@contextlib.contextmanager
def _temporal_server(cache: Path, tmp: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The Temporal dev server on loopback, SQLite in WAL mode, no UI."""
    port = free_port()
    server = subprocess.Popen(
        [
            str(cache / "bin" / f"temporal-{TEMPORAL_CLI}"),
            "server",
            "start-dev",
            "--headless",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--http-port={free_port()}",
            f"--metrics-port={free_port()}",
            f"--db-filename={tmp / 'temporal.db'}",
            "--sqlite-pragma=journal_mode=wal",
            "--log-level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "temporal.log").open("wb"),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"temporal dev server: {(tmp / 'temporal.log').read_text()}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", server
    finally:
        server.terminate()
        server.wait(30)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def temporal(cache: Path, count: int) -> dict[str, Any]:
    python, peer = str(cache / "venv" / "bin" / "python"), str(PEERS / "temporal_peer.py")
    out: dict[str, Any] = {"version": f"temporal CLI {TEMPORAL_CLI} dev server, temporalio 1.35"}
    for workload in ("three", "sleep"):  # a fresh server each: B's memory is B's alone
        with (
            tempfile.TemporaryDirectory() as tmp,
            _temporal_server(cache, Path(tmp)) as (
                address,
                server,
            ),
        ):
            worker = subprocess.Popen(
                [python, peer, "worker", address],
                stdout=subprocess.DEVNULL,
                stderr=(Path(tmp) / "worker.log").open("wb"),
                start_new_session=True,
            )
            try:
                print(f"  temporal: workload {workload}, {count} workflows", flush=True)
                result = _json([python, peer, "drive", address, workload, str(count), "50"])
                if workload == "sleep":
                    result["server_rss_mib"] = _rss_mib(server.pid)
                    result["worker_rss_mib"] = _rss_mib(worker.pid)
                out[workload] = result
            finally:
                worker.terminate()
                worker.wait(30)
    return out


def dbos(cache: Path, count: int) -> dict[str, Any]:
    python, peer = str(cache / "venv" / "bin" / "python"), str(PEERS / "dbos_peer.py")
    out: dict[str, Any] = {"version": "DBOS Transact 3.4.0, SQLite system database (WAL)"}
    for workload in ("three", "sleep"):
        with tempfile.TemporaryDirectory() as tmp:
            print(f"  dbos: workload {workload}, {count} workflows", flush=True)
            db = str(Path(tmp) / "dbos.sqlite")
            out[workload] = _json([python, peer, workload, str(count), str(IN_FLIGHT), db])
    return out


def tenantflow(count: int) -> dict[str, Any]:
    tenant = f"peer-{uuid.uuid4().hex[:5]}"
    with operator_on_dev_cluster() as (kubeconfig, operator):
        ns = three_step_tenant(kubeconfig, tenant)
        print(f"  tenantflow: workload three, {count} instances", flush=True)
        three = measure(kubeconfig, operator, tenant, ns, count, backlog=False, parallel=IN_FLIGHT)
        status = json.loads(
            kubectl(kubeconfig, "-n", ns, "get", "wfi", "l-00000", "-o", "jsonpath={.status}")
        )
        kubectl(kubeconfig, "delete", "tenant", tenant, "--wait=false")
        print(f"  tenantflow: workload sleep, {count} instances", flush=True)
        sleep = sleepers(kubeconfig, operator, count, parallel=IN_FLIGHT)
        operator.stop()  # the ceiling is the API server alone
        print(f"  ceiling: {count} creates + status patches of {len(json.dumps(status))} B")
        ceiling = asyncio.run(api_ceiling(kubeconfig, count, status))
    return {"three": three, "sleep": sleep, "ceiling": ceiling}


async def api_ceiling(kubeconfig: Path, count: int, status: dict[str, Any]) -> dict[str, Any]:
    """Creates plus one status merge-patch each (`status`: a finished three-step
    instance's, as tenantflow wrote it), IN_FLIGHT at once: in a namespace like a tenant's
    (a ResourceQuota counts the instances, so every create also updates the quota), and in
    a bare one."""
    quota = {f"count/workflowinstances.{GROUP}": str(count * 2)}
    return {
        "instances": count,
        "status_bytes": len(json.dumps(status)),
        "instances_per_s": await _ceiling(kubeconfig, count, status, quota),
        "instances_per_s_without_quota": await _ceiling(kubeconfig, count, status, None),
    }


async def _ceiling(
    kubeconfig: Path, count: int, status: dict[str, Any], quota: dict[str, str] | None
) -> float:
    ns = f"ceiling-{uuid.uuid4().hex[:5]}"
    kube = await Kube.connect(str(kubeconfig), connections=IN_FLIGHT, proxy_from_env=False)
    gate = asyncio.Semaphore(IN_FLIGHT)
    try:
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        if quota:
            await kube.create(
                {
                    "apiVersion": "v1",
                    "kind": "ResourceQuota",
                    "metadata": {"name": "instances", "namespace": ns},
                    "spec": {"hard": quota},
                }
            )
            await asyncio.sleep(2)  # the quota controller fills in status.used first

        async def one(i: int) -> None:
            async with gate:
                name = f"c-{i:05}"
                await kube.create(
                    {
                        "apiVersion": API_VERSION,
                        "kind": INSTANCE,
                        "metadata": {"name": name, "namespace": ns},
                        "spec": {"workflowRef": {"name": "three"}},
                    }
                )
                await kube.patch(
                    API_VERSION, INSTANCE, name, ns, {"status": status}, subresource="status"
                )

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        elapsed = time.perf_counter() - t0
        await kube.delete("v1", "Namespace", ns)
    finally:
        await kube.close()
    return round(count / elapsed, 1)


def _ratio(ours: dict[str, Any], theirs: dict[str, Any], key: str) -> float:
    return round(float(ours[key]) / float(theirs[key]), 2)


def main() -> None:
    count = int(os.environ.get("BENCH_PEERS_INSTANCES", "2000"))
    cache = setup()
    ours = tenantflow(count)
    peers = {"temporal": temporal(cache, count), "dbos": dbos(cache, count)}
    ceiling = ours["ceiling"]["instances_per_s"]
    ratios = {
        f"vs_{name}_{metric}": _ratio(ours["three"], p["three"], f"{metric}_per_s")
        for name, p in peers.items()
        for metric in ("starts", "completions")
    }
    write(
        "peers",
        {
            "instances": count,
            "in_flight": IN_FLIGHT,
            "sandboxCpu": sandbox_cpu(),
            "tenantflow": ours,
            **peers,
            **ratios,
            "fraction_of_api_ceiling": round(ours["three"]["completions_per_s"] / ceiling, 2),
        },
    )


if __name__ == "__main__":
    main()
