"""Search attributes set from workflow code (issue 34.3) on a real cluster: the code sets a
declared attribute after a step, the instance carries it as a label (a label selector
finds it while it waits), and once archived `tenantflow list -l` still finds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import wait_deleted, wait_for
from e2e.conftest import GROUP, VERSION, cli

pytestmark = pytest.mark.e2e
CI = """
async def run(event, step, env):
    await step.do("test", lambda: "passed")
    await step.set_attributes(status="tests-passed")
    await step.wait_for_event("ship", type="ship", timeout="5m")
    await step.set_attributes(status="shipped")
    return "shipped"
"""


def test_an_attribute_set_from_the_code_is_a_label_then_an_archived_attribute(
    tenant_factory: Any, kubeconfig: Path
) -> None:
    tenant = tenant_factory(maxStepTimeoutSeconds=60, history={"keepFinishedFor": "0s"})
    tenant.define("ci", CI, searchAttributes={"status": "status"})
    tenant.wait_revision("ci", 1)
    name = tenant.start("ci", {"repo": "acme/web"})
    tenant.wait_phase(name, "Waiting")

    def selected(selector: str) -> list[str]:
        listed = tenant.custom.list_namespaced_custom_object(
            GROUP, VERSION, tenant.ns, "workflowinstances", label_selector=selector
        )
        return [i["metadata"]["name"] for i in listed["items"]]

    wait_for(lambda: selected("status=tests-passed") == [name], f"{name} labelled", 30)
    live = cli(kubeconfig, "-n", tenant.ns, "list", "-l", "status=tests-passed").stdout
    assert name in live, live

    tenant.send_event(name, "ship")
    wait_deleted(
        lambda: tenant.custom.get_namespaced_custom_object(
            GROUP, VERSION, tenant.ns, "workflowinstances", name
        ),
        f"{name} archived and deleted",
        120,
    )
    archived = cli(kubeconfig, "-n", tenant.ns, "list", "-l", "status=shipped").stdout
    assert name in archived, archived
    before = cli(kubeconfig, "-n", tenant.ns, "list", "-l", "status=tests-passed").stdout
    assert name not in before, "the label the code set last is the one archived"
