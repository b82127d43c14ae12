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
import uuid
from pathlib import Path

import pytest

from conftest import wait_for
from tenantflow_dev.devcluster import DevCluster, images, previous
from tests.integration.chart_rig import (
    CHART,
    EVERY,
    Cluster,
    Kubectl,
    check_finished,
    helm,
    in_flight,
    install,
    paced,
    provision,
    uninstall,
)

pytestmark = pytest.mark.slow


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
        install(c, release.chart, *release.values)
        wait_for(lambda: c.rolled_out(f"operator:{release.version}"), "the release's pods", 120)
        provision(c)
        before = in_flight(c, "a")
        wait_for(lambda: len(c.ticks()) >= 2, "the schedule running under the release", 90)

        upgraded_at = dt.datetime.now(dt.UTC)
        helm(kubeconfig, "upgrade", "tf", str(CHART), *common, *new_values)
        wait_for(lambda: c.rolled_out(f"operator:{images.project_version()}"), "the upgrade", 180)
        c.wait_driven_by_chart()
        check_finished(c, before, "after the upgrade", upgraded_at)
        wait_for(
            lambda: c.ticks()[-1] > upgraded_at + dt.timedelta(seconds=EVERY),
            "a run after the upgrade",
            90,
        )
        paced(c.ticks(), upgraded_at)

        during = in_flight(c, "b")  # started by this tree, finished by the release
        rolled_back_at = dt.datetime.now(dt.UTC)
        helm(kubeconfig, "rollback", "tf", "1", "-n", ns, "--wait", "--timeout", "180s")
        wait_for(lambda: c.rolled_out(f"operator:{release.version}"), "the rollback", 180)
        c.wait_driven_by_chart()
        check_finished(c, during, "after the rollback", rolled_back_at)
        wait_for(
            lambda: c.ticks()[-1] > rolled_back_at + dt.timedelta(seconds=EVERY),
            "a run after the rollback",
            90,
        )
        paced(c.ticks(), rolled_back_at)
    finally:
        uninstall(c)
