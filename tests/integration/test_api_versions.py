"""The API's versions on a real API server: v1beta1 (stored) and v1alpha1 (served,
deprecated) show the same objects, and `tenantflow migrate-storage` moves what an older
release stored into the storage version, so a version can later be dropped."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import wait_for
from tenantflow.cli.migrate_cmd import Resource, migrate
from tenantflow.kube.client import Kube
from tenantflow.vocabulary import DEPRECATED_VERSIONS, GROUP, VERSION

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
OLD = next(iter(DEPRECATED_VERSIONS))


def _schedule(namespace: str, name: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{version}",
        "kind": "WorkflowSchedule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"schedule": "0 3 * * *", "workflowRef": {"name": "nightly"}, "suspend": True},
    }


def test_either_version_shows_the_same_objects(
    crds: Path, kubectl: Kubectl, namespace: str
) -> None:
    old, new = f"old-{uuid.uuid4().hex[:6]}", f"new-{uuid.uuid4().hex[:6]}"
    created = kubectl(
        "apply",
        "-f",
        "-",
        input=yaml.safe_dump_all(
            [_schedule(namespace, old, OLD), _schedule(namespace, new, VERSION)]
        ),
    )
    assert "deprecated" in created.stderr, "kubectl shows the API server's deprecation warning"
    assert VERSION in created.stderr, created.stderr

    def read(version: str) -> dict[str, dict[str, Any]]:
        out = kubectl("get", f"workflowschedules.{version}.{GROUP}", "-n", namespace, "-o", "json")
        return {i["metadata"]["name"]: i for i in json.loads(out.stdout)["items"]}

    def same_moment() -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Both versions read at one resourceVersion of each object (an operator may write
        a schedule's status between two reads)."""
        a, b = read(OLD), read(VERSION)
        rv = lambda items: {n: i["metadata"]["resourceVersion"] for n, i in items.items()}  # noqa: E731
        return (a, b) if rv(a) == rv(b) else None

    as_old, as_new = wait_for(same_moment, "one resourceVersion read in both versions", 30)  # type: ignore[misc]
    assert set(as_old) == set(as_new) == {old, new}
    for name in (old, new):
        assert as_old[name]["apiVersion"] == f"{GROUP}/{OLD}"
        assert as_new[name]["apiVersion"] == f"{GROUP}/{VERSION}"
        for part in ("spec", "status"):
            assert as_old[name].get(part) == as_new[name].get(part), (name, part)
        assert as_old[name]["metadata"]["uid"] == as_new[name]["metadata"]["uid"]
    # the printer columns are the same too
    table = lambda v: kubectl("get", f"workflowschedules.{v}.{GROUP}", "-n", namespace).stdout  # noqa: E731
    assert table(OLD).splitlines()[0] == table(VERSION).splitlines()[0]
    assert "0 3 * * *" in table(OLD)


@pytest.fixture
def probe_crd(kubectl: Kubectl) -> Iterator[Resource]:
    """A CRD of its own (not ours: the suite's operator uses those), stored in `v1` as an
    earlier release would have, with objects written then."""
    group = f"migrate-{uuid.uuid4().hex[:6]}.{GROUP}"
    name = f"probes.{group}"
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}

    def crd(storage: str) -> str:
        versions = [
            {"name": v, "served": True, "storage": v == storage, "schema": schema}
            for v in ("v1", "v2")
        ]
        return yaml.safe_dump(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": name},
                "spec": {
                    "group": group,
                    "scope": "Namespaced",
                    "names": {"plural": "probes", "singular": "probe", "kind": "Probe"},
                    "versions": versions,
                },
            }
        )

    kubectl("apply", "-f", "-", input=crd("v1"))
    kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    try:
        wait_for(
            lambda: kubectl("get", f"probes.v1.{group}", "-A", check=False).returncode == 0,
            "the probe CRD served",
            30,
        )
        for i in range(3):
            kubectl(
                "apply",
                "-f",
                "-",
                input=yaml.safe_dump(
                    {
                        "apiVersion": f"{group}/v1",
                        "kind": "Probe",
                        "metadata": {"name": f"p{i}", "namespace": "default"},
                        "data": {"i": i},
                    }
                ),
            )
        kubectl("apply", "-f", "-", input=crd("v2"))  # an upgrade: v2 is stored from now on
        yield Resource(group, "probes", "v2")
    finally:
        kubectl("delete", "crd", name, "--wait=false", check=False)


def test_migrate_storage_rewrites_what_an_older_version_stored(
    kubeconfig: Path, kubectl: Kubectl, probe_crd: Resource
) -> None:
    name = f"{probe_crd.plural}.{probe_crd.group}"

    def stored() -> list[str]:
        crd = json.loads(kubectl("get", "crd", name, "-o", "json").stdout)
        return list(crd["status"]["storedVersions"])

    def versions() -> dict[str, str]:
        out = kubectl("get", f"probes.v2.{probe_crd.group}", "-n", "default", "-o", "json")
        return {
            i["metadata"]["name"]: i["metadata"]["resourceVersion"]
            for i in json.loads(out.stdout)["items"]
        }

    assert stored() == ["v1", "v2"], "the API server still holds objects written in v1"
    before = versions()

    async def run(dry_run: bool) -> list[Any]:
        kube = await Kube.connect(str(kubeconfig))
        try:
            return await migrate(kube, (probe_crd,), dry_run=dry_run)
        finally:
            await kube.close()

    (dry,) = asyncio.run(run(True))
    assert (dry.rewritten, dry.storedAfter) == (3, ["v1", "v2"])
    assert versions() == before and stored() == ["v1", "v2"], "a dry run writes nothing"

    (done,) = asyncio.run(run(False))
    assert (done.storedBefore, done.rewritten, done.storedAfter) == (["v1", "v2"], 3, ["v2"])
    assert stored() == ["v2"]
    after = versions()
    assert set(after) == set(before) == {"p0", "p1", "p2"}
    assert all(after[n] != before[n] for n in before), "each object was written again"
    data = json.loads(
        kubectl("get", f"probes.v1.{probe_crd.group}", "p1", "-n", "default", "-o", "json").stdout
    )
    assert data["data"] == {"i": 1}, "nothing but the encoding changed"

    (again,) = asyncio.run(run(False))
    assert (again.rewritten, again.storedAfter) == (0, ["v2"]), "a second run has nothing to do"


def test_the_cli_migrates_our_own_kinds(kubeconfig: Path, crds: Path, kubectl: Kubectl) -> None:
    """`tenantflow migrate-storage` on the suite's own CRDs: afterwards each stores only
    the storage version (whatever an earlier run of this cluster left there)."""
    from tenantflow.cli.main import main

    assert main(["--kubeconfig", str(kubeconfig), "migrate-storage"]) == 0
    for plural in ("tenants", "workflowdefinitions", "workflowinstances", "workflowschedules"):
        crd = json.loads(kubectl("get", "crd", f"{plural}.{GROUP}", "-o", "json").stdout)
        assert crd["status"]["storedVersions"] == [VERSION], plural
