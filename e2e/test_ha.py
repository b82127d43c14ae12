"""Two operator replicas on the real cluster: they split the shards; the holder of a
tenant's shard paused (SIGSTOP) past its lease stops acting on its own while the other
takes the shard over and finishes the tenant's instances; resumed, the paused one writes
nothing; killed (SIGKILL), its shards move within the failover bound. Every step body runs
once through all of it (nothing died mid-step)."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import wait_for
from e2e.conftest import Tenant
from tenantflow.controllers.shards import ShardSettings
from tenantflow.tenancy.sharding import shard_of
from tenantflow_dev.devcluster.operator_process import OperatorProcess

FAILOVER_BOUND_S = 15.0  # lease 6 s + observation and renewal periods, with room for CI
WORKFLOW = """
async def run(event, step, env):
    env.db.execute('CREATE TABLE IF NOT EXISTS ran (instance TEXT, step TEXT)')
    def body(name):
        env.db.execute('INSERT INTO ran VALUES (?, ?)', (event['instanceId'], name))
        return name
    await step.do('a', lambda: body('a'))
    await step.sleep('nap', '4s')
    await step.do('b', lambda: body('b'))
    return 'done'
"""


def metric(op: OperatorProcess, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics").read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


@pytest.fixture
def second(
    kubeconfig: Path, operator_process: OperatorProcess, tmp_path: Path
) -> Iterator[OperatorProcess]:
    extra = OperatorProcess(kubeconfig, tmp_path / "second.log", identity="ha-second")
    extra.start()
    yield extra
    extra.stop()
    if operator_process.proc is None or operator_process.proc.poll() is not None:
        operator_process.start()  # the session's operator was the one killed: back for the rest


def holder(kubectl: Callable[..., Any], tenant: Tenant) -> str:
    shard = shard_of(tenant.ns, ShardSettings().shards)
    return str(
        kubectl(
            "get", "lease", f"tenantflow-shard-{shard}", "-n", ShardSettings().namespace,
            "-o", "jsonpath={.spec.holderIdentity}",
        ).stdout
    )  # fmt: skip


def run_batch(tenant: Tenant, n: int) -> list[str]:
    names = [tenant.start("ha") for _ in range(n)]
    for name in names:
        tenant.wait_phase(name, "Waiting", timeout=60)  # asleep between its two steps
    return names


def ran_once(tenant: Tenant, names: list[str]) -> None:
    rows = tenant.query("SELECT instance, step, count(*) FROM ran GROUP BY instance, step")
    counts = {(i, s): n for i, s, n in rows}
    for name in names:
        ident = f"{tenant.ns}/{name}"
        got = {s: n for (i, s), n in counts.items() if i in (name, ident)}
        assert got == {"a": 1, "b": 1}, (name, got)


def test_replicas_split_fail_over_and_a_paused_one_is_fenced(
    tenant: Tenant,
    operator_process: OperatorProcess,
    second: OperatorProcess,
    kubectl: Callable[..., Any],
) -> None:
    replicas = {operator_process.identity: operator_process, second.identity: second}
    wait_for(
        lambda: all(metric(op, "tenantflow_shards_held") > 0 for op in replicas.values()),
        "both replicas holding shards",
        30,
    )
    tenant.define("ha", WORKFLOW)
    tenant.wait_revision("ha", 1)

    # the holder paused past its lease: the other takes over and finishes the work
    names = run_batch(tenant, 4)
    shard = str(shard_of(tenant.ns, ShardSettings().shards))
    labels = tenant.get(names[0])["metadata"].get("labels") or {}
    assert labels.get("tenantflow.dev/shard") == shard, "labelled for its shard's watch"
    paused = replicas[holder(kubectl, tenant)]
    other = next(op for op in replicas.values() if op is not paused)
    assert paused.proc is not None
    os.kill(paused.proc.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        wait_for(lambda: holder(kubectl, tenant) == other.identity, "the shard moved", 30)
        moved = time.monotonic() - t0
        done = [tenant.wait_phase(name, "Complete", timeout=60) for name in names]
    finally:
        os.kill(paused.proc.pid, signal.SIGCONT)
    assert moved < FAILOVER_BOUND_S, moved
    versions = {name: tenant.get(name)["metadata"]["resourceVersion"] for name in names}
    time.sleep(4)  # resumed: it must see it lost the shard before writing anything
    assert {n: tenant.get(n)["metadata"]["resourceVersion"] for n in names} == versions
    assert all(st["output"] == "done" for st in done)
    ran_once(tenant, names)

    # the holder killed: its shards move within the bound, the work resumes
    names = run_batch(tenant, 4)
    victim = replicas[holder(kubectl, tenant)]
    survivor = next(op for op in replicas.values() if op is not victim)
    victim.kill()
    t0 = time.monotonic()
    wait_for(lambda: holder(kubectl, tenant) == survivor.identity, "the shard moved", 30)
    assert time.monotonic() - t0 < FAILOVER_BOUND_S
    for name in names:
        assert tenant.wait_phase(name, "Complete", timeout=60)["output"] == "done"
    ran_once(tenant, names)
