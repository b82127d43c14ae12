"""Health that GitOps tools understand, judged by the real rules: every kind in each of its
states, read back from the API server and given to kstatus (sigs.k8s.io/cli-utils, what
Flux and `kubectl wait` use, built from its Go module like the control plane) and to the
chart's Argo CD health script (run by a Lua runtime)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lupa import LuaRuntime

from conftest import wait_for
from e2e.conftest import GROUP, VERSION, Tenant
from tenantflow_dev.devcluster import versions


def kstatus(*objects: dict[str, Any]) -> list[str]:
    """Current / InProgress / Failed for each object, by cli-utils' kstatus."""
    done = subprocess.run(
        [str(versions.bin_dir() / "kstatus")],
        input=json.dumps(list(objects)),
        capture_output=True,
        text=True,
        check=True,
    )
    return [r["status"] for r in json.loads(done.stdout)]


ARGOCD_HEALTH = Path(__file__).resolve().parents[1] / "charts/tenantflow/files/argocd-health.lua"
ARGOCD_FOR = {"Current": "Healthy", "InProgress": "Progressing", "Failed": "Degraded"}


def argocd(*objects: dict[str, Any]) -> list[str]:
    """The chart's Argo CD health script, run as Argo CD runs it (`obj` in, `hs` out)."""
    lua = LuaRuntime(unpack_returned_tuples=True)
    health = lua.eval(f"function(obj) {ARGOCD_HEALTH.read_text()} end")
    return [str(health(lua.table_from(o, recursive=True)).status) for o in objects]


def judged(*objects: dict[str, Any]) -> list[str]:
    """kstatus' verdict for each object, after checking Argo CD's script agrees with it."""
    verdicts = kstatus(*objects)
    assert argocd(*objects) == [ARGOCD_FOR[v] for v in verdicts], verdicts
    return verdicts


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def test_every_kind_in_every_state_reads_as_kstatus_expects(
    tenant_factory: Callable[..., Tenant], kubectl: Callable[..., Any]
) -> None:
    tenant = tenant_factory()
    tenant_obj = tenant.custom.get_cluster_custom_object(GROUP, VERSION, "tenants", tenant.name)
    assert judged(tenant_obj) == ["Current"], conditions(tenant_obj)

    good = tenant.define("good", "async def run(event, step):\n    return 1\n")
    broken = tenant.define("broken", "async def run(event, step)\n    return 1\n")
    good = tenant.wait_revision("good", 1)
    broken = wait_for(
        lambda: (
            (
                d := tenant.custom.get_namespaced_custom_object(
                    GROUP, VERSION, tenant.ns, "workflowdefinitions", "broken"
                )
            )
            and conditions(d).get("Stalled", {}).get("status") == "True"
            and d
        ),
        "the broken definition Stalled",
    )
    assert judged(good, broken) == ["Current", "Failed"]
    assert conditions(broken)["Stalled"]["reason"] == "SyntaxError"
    assert "fix spec.source" in conditions(broken)["Ready"]["message"]

    tenant.define(
        "waits",
        "async def run(event, step):\n"
        "    await step.wait_for_event('go', type='go', timeout='1h')\n"
        "    if event['payload'] == 'fail':\n"
        "        raise ValueError('asked to fail')\n"
        "    return 'done'\n",
    )
    tenant.wait_revision("waits", 1)
    ok, bad = tenant.start("waits", "ok"), tenant.start("waits", "fail")
    waiting = [tenant.wait_phase(i, "Waiting") and tenant.get(i) for i in (ok, bad)]
    assert judged(*waiting) == ["InProgress", "InProgress"]
    assert conditions(waiting[0])["Reconciling"]["status"] == "True"
    for inst in (ok, bad):
        tenant.send_event(inst, "go")
    # `kubectl wait` works for a completed instance
    kubectl("-n", tenant.ns, "wait", "--for=condition=Ready", f"wfi/{ok}", "--timeout=60s")
    tenant.wait_phase(bad, "Errored")
    done, failed = tenant.get(ok), tenant.get(bad)
    assert judged(done, failed) == ["Current", "Failed"]
    assert conditions(done)["Ready"]["reason"] == "Complete"
    stalled = conditions(failed)["Stalled"]
    assert stalled["reason"] == "ValueError" and "asked to fail" in stalled["message"]
    for obj in (tenant_obj, good, broken, done, failed):  # kstatus' generation rule holds
        status = obj["status"]
        assert status["observedGeneration"] == obj["metadata"]["generation"], obj["kind"]
        assert all(
            c["observedGeneration"] == obj["metadata"]["generation"] for c in status["conditions"]
        ), obj["kind"]

    # a Tenant the operator refuses to apply is Failed, with the reason
    tenant.custom.patch_cluster_custom_object(
        GROUP, VERSION, "tenants", tenant.name, {"spec": {"sandbox": {"image": "evil/x:1"}}}
    )
    refused = wait_for(
        lambda: (
            (t := tenant.custom.get_cluster_custom_object(GROUP, VERSION, "tenants", tenant.name))
            and conditions(t).get("Stalled", {}).get("status") == "True"
            and t
        ),
        "the Tenant Stalled by its refused image",
    )
    assert judged(refused) == ["Failed"]
    assert conditions(refused)["Stalled"]["reason"] == "ImageNotAllowed"
