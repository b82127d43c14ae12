"""Operator pod faults with instances in flight (issue 39.4): this tree's chart installed
on the dev node (two replicas, its PodDisruptionBudget) drives a tenant's instances while
the pod holding the tenant's shard is deleted, the next holder is evicted through the
Eviction API, and the Deployment is restarted with every old pod evicted during the
rollout as `kubectl drain` would (the budget refusing with 429 while one is down, retried).
Every instance completes with its output, no step that completed runs again, and the
schedule keeps its pace.

The node is not cordoned: it is the only one, and a drain's evicted pods come back on it
(a cordoned single node would hold the replacements Pending until uncordoned)."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path

import pytest

from conftest import wait_for
from tenantflow_dev.devcluster import DevCluster, images
from tests.integration.chart_rig import (
    CHART,
    EVERY,
    Cluster,
    Kubectl,
    check_finished,
    in_flight,
    install,
    paced,
    provision,
    uninstall,
)

pytestmark = pytest.mark.slow


def evict(c: Cluster, pod: str, timeout: float = 120) -> None:
    """Evict `pod` as `kubectl drain` does: POST an Eviction, retry while the budget
    refuses (429), until it is evicted or gone."""
    body = json.dumps(
        {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod, "namespace": c.ns},
        }
    )
    path = f"/api/v1/namespaces/{c.ns}/pods/{pod}/eviction"
    deadline = time.monotonic() + timeout
    while pod in c.pods():
        done = c.k("create", "--raw", path, "-f", "-", input=body, check=False)
        if done.returncode == 0:
            return
        if "disruption budget" not in done.stderr and "TooManyRequests" not in done.stderr:
            assert "NotFound" in done.stderr or "not found" in done.stderr, done.stderr
            return
        assert time.monotonic() < deadline, f"{pod} not evicted in {timeout}s: {done.stderr}"
        time.sleep(2)


def replaced(c: Cluster, image: str, gone: set[str], what: str) -> None:
    """Two ready pods on `image`, none of `gone` left, and one of them holding the shard."""
    wait_for(lambda: c.rolled_out(image) and not gone & c.pods(), what, 180)
    c.wait_driven_by_chart()


def test_operator_pods_deleted_evicted_and_drained_mid_rollout(
    kubeconfig: Path, crds: Path, kubectl: Kubectl, only_the_chart: None
) -> None:
    assert DevCluster().has_node(), "the pod faults need the dev cluster's real node"
    ns, tenant = f"tf-pf-{uuid.uuid4().hex[:6]}", f"pf-{uuid.uuid4().hex[:6]}"
    c = Cluster(kubectl, kubeconfig, ns, tenant)
    image = f"operator:{images.project_version()}"
    try:
        install(c, CHART, *images.chart_values())
        wait_for(lambda: c.rolled_out(image), "the chart's pods", 120)
        provision(c)
        names = in_flight(c, "a")
        wait_for(lambda: len(c.ticks()) >= 2, "the schedule running", 90)
        faults_from = dt.datetime.now(dt.UTC)

        holder = c.shard_holder()
        kubectl("delete", "pod", holder, "-n", ns, "--wait=false")
        replaced(c, image, {holder}, "the deleted shard holder replaced")

        holder = c.shard_holder()
        evict(c, holder)
        replaced(c, image, {holder}, "the evicted shard holder replaced")

        old = c.pods()
        kubectl("rollout", "restart", "deployment/tf-operator", "-n", ns)
        for pod in sorted(old, key=lambda p: p != c.shard_holder()):  # the holder first
            evict(c, pod, timeout=180)
        replaced(c, image, old, "the rollout done with every old pod evicted")

        check_finished(c, names, "after the pod faults", faults_from)
        wait_for(
            lambda: c.ticks()[-1] > dt.datetime.now(dt.UTC) - dt.timedelta(seconds=EVERY),
            "the schedule running after the faults",
            90,
        )
        paced(c.ticks(), faults_from)
    finally:
        uninstall(c)
