"""The Helm chart: lints, renders to objects the API server accepts, and installs the
operator as pods on the dev cluster's real node (locally built images), which then runs a
tenant's workflow through the operator pod's death; upgrades and uninstalls."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import wait_for
from tenantflow.api.tenant import Tenant
from tenantflow.tenancy import manifests
from tenantflow_dev.devcluster import DevCluster, images, node
from tests.integration.chart_rig import CHART, Kubectl, helm


def test_helm_lint(kubeconfig: Path) -> None:
    assert "0 chart(s) failed" in helm(kubeconfig, "lint", str(CHART)).stdout


def test_two_replicas_by_default_with_a_budget_and_spread(kubeconfig: Path) -> None:
    docs = [
        d for d in yaml.safe_load_all(helm(kubeconfig, "template", "t", str(CHART)).stdout) if d
    ]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert "podAntiAffinity" in pod["affinity"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["TENANTFLOW_IDENTITY"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert (
        next(d for d in docs if d["kind"] == "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    )
    assert env["TENANTFLOW_LEASE_NAMESPACE"]["value"] == "tenantflow-system", "one group"
    one = helm(kubeconfig, "template", "t", str(CHART), "--set", "replicas=1").stdout
    assert "PodDisruptionBudget" not in one


def test_rbac_has_no_wildcards(kubeconfig: Path) -> None:
    docs = list(yaml.safe_load_all(helm(kubeconfig, "template", "t", str(CHART)).stdout))
    role = next(d for d in docs if d and d["kind"] == "ClusterRole")
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule


def test_the_operator_holds_every_permission_a_tenant_role_grants(kubeconfig: Path) -> None:
    """The API server refuses a Role granting what its writer does not hold (RBAC's
    escalation check): every tenant Role's rule must be covered by the chart's ClusterRole,
    or no tenant becomes Ready."""
    docs = list(yaml.safe_load_all(helm(kubeconfig, "template", "t", str(CHART)).stdout))
    held = next(d for d in docs if d and d["kind"] == "ClusterRole")["rules"]
    tenant = Tenant.model_validate({"metadata": {"name": "acme"}, "spec": {}})
    for role in manifests.roles(tenant)[:2]:
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        names = rule.get("resourceNames") or [None]
                        assert all(
                            any(_covers(h, group, resource, verb, n) for h in held) for n in names
                        ), (role["metadata"]["name"], group, resource, verb, names)


def _covers(rule: dict[str, Any], group: str, resource: str, verb: str, name: str | None) -> bool:
    return (
        group in rule.get("apiGroups", [])
        and resource in rule.get("resources", [])
        and verb in rule.get("verbs", [])
        and (not rule.get("resourceNames") or name in rule["resourceNames"])
    )


def test_rendered_chart_is_accepted_by_the_api_server(
    kubeconfig: Path, crds: Path, kubectl: Kubectl, namespace: str
) -> None:
    rendered = helm(kubeconfig, "template", "t", str(CHART), "-n", namespace).stdout
    result = kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=rendered, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "deployment.apps/t-operator created (server dry run)" in result.stdout


@pytest.mark.slow
def test_install_run_a_workflow_upgrade_uninstall(
    kubeconfig: Path, crds: Path, kubectl: Kubectl
) -> None:
    """The operator as users run it: installed by the chart, in pods on the real node with
    in-cluster credentials and the chart's RBAC, driving a tenant's sandbox pod over the
    pod network; then upgraded and uninstalled."""
    assert DevCluster().has_node(), "the dev cluster has no real node (TENANTFLOW_NODE=none?)"
    ns, release, tenant = f"tf-chart-{uuid.uuid4().hex[:6]}", "tf", f"chart-{uuid.uuid4().hex[:6]}"

    def deployment(jsonpath: str) -> str:
        return kubectl(
            "get", "deployment", "tf-operator", "-n", ns, "-o", f"jsonpath={{{jsonpath}}}"
        ).stdout

    install = ["-n", ns, "--wait", "--timeout", "150s", *images.chart_values()]
    try:
        helm(
            kubeconfig,
            "install",
            release,
            str(CHART),
            "--create-namespace",
            *install,
        )
        assert deployment(".status.readyReplicas") == "2"
        nodes = kubectl("get", "pods", "-n", ns, "-o", "jsonpath={.items[*].spec.nodeName}")
        assert set(nodes.stdout.split()) == {node.NODE_NAME}, nodes.stdout
        tenant_doc, *workflow_docs = _tenant_and_workflow(tenant)
        kubectl("apply", "-f", "-", input=yaml.safe_dump(tenant_doc))
        wait_for(
            lambda: (
                kubectl("get", "tenant", tenant, "-o", "jsonpath={.status.phase}").stdout == "Ready"
            ),
            "the tenant Ready (provisioned by the operator pod)",
            90,
        )
        tns = f"tenant-{tenant}"
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all(workflow_docs))
        wait_for(
            lambda: "nap" in kubectl("get", "wfi", "hello", "-n", tns, "-o", "yaml").stdout,
            "the instance asleep between its steps",
            90,
        )
        # both operator pods killed mid-workflow (no grace): the Deployment makes others,
        # which take the dead pods' shards once their Leases run out and pick the instance
        # up where the journal says it is
        old = kubectl("get", "pods", "-n", ns, "-o", "jsonpath={.items[*].metadata.name}").stdout
        kubectl("delete", "pods", "--all", "-n", ns, "--grace-period=0", "--force")
        wait_for(
            lambda: (
                deployment(".status.readyReplicas") == "2"
                and not set(old.split())
                & set(kubectl("get", "pods", "-n", ns, "-o", "name").stdout.split())
            ),
            "a new operator pod ready",
            90,
        )
        phase = wait_for(
            lambda: (
                kubectl("get", "wfi", "hello", "-n", tns, "-o", "jsonpath={.status.phase}").stdout
                in ("Complete", "Errored", "Failed")
                and kubectl(
                    "get", "wfi", "hello", "-n", tns, "-o", "jsonpath={.status.phase}"
                ).stdout
            ),
            "the instance finished, driven by the operator pod",
            150,
        )
        out = kubectl("get", "wfi", "hello", "-n", tns, "-o", "jsonpath={.status.output}").stdout
        assert phase == "Complete", kubectl("get", "wfi", "hello", "-n", tns, "-o", "yaml").stdout
        assert json.loads(out) == {
            "greeting": "hello from a pod",
            "uid": 10001,
            "step_bodies_run": 2,  # each step's body once, through the operator's death
        }
        helm(
            kubeconfig,
            "upgrade",
            release,
            str(CHART),
            *install,
            "--set",
            "logLevel=DEBUG",
        )
        assert '"value":"DEBUG"' in deployment(".spec.template.spec.containers[0].env")
        wait_for(lambda: deployment(".status.updatedReplicas") == "2", "the upgrade rolled out", 90)
        assert "tf" in helm(kubeconfig, "list", "-n", ns).stdout
    finally:
        kubectl("delete", "tenant", tenant, "--wait=false", check=False)
        helm(kubeconfig, "uninstall", release, "-n", ns, "--wait", "--timeout", "120s", check=False)
    assert kubectl("get", "deployment", "tf-operator", "-n", ns, check=False).returncode != 0
    assert kubectl("get", "clusterrole", "tf-operator", check=False).returncode != 0
    assert kubectl("get", "crd", "tenants.tenantflow.dev").returncode == 0, "CRDs are kept"
    kubectl("delete", "namespace", ns, "--wait=false")


def _tenant_and_workflow(tenant: str) -> list[dict[str, object]]:
    source = (
        "import os\n"
        "def counted(env, name, value):\n"
        "    env.db.execute('INSERT INTO bodies VALUES (?)', (name,))\n"
        "    return value\n"
        "async def run(event, step, env):\n"
        "    env.db.execute('CREATE TABLE IF NOT EXISTS bodies (name TEXT)')\n"
        "    uid = await step.do('who', lambda: counted(env, 'who', os.getuid()))\n"
        "    await step.sleep('nap', '6s')\n"
        "    await step.do('after', lambda: counted(env, 'after', 1))\n"
        "    runs = env.db.query('SELECT count(*) AS n FROM bodies')[0]['n']\n"
        "    return {'greeting': 'hello from a pod', 'uid': uid, 'step_bodies_run': runs}\n"
    )
    ns = f"tenant-{tenant}"
    docs = [
        {
            "apiVersion": "tenantflow.dev/v1beta1",
            "kind": "Tenant",
            "metadata": {"name": tenant},
            "spec": {},
        },
        {
            "apiVersion": "tenantflow.dev/v1beta1",
            "kind": "WorkflowDefinition",
            "metadata": {"name": "hello", "namespace": ns},
            "spec": {"source": {"inline": source}},
        },
        {
            "apiVersion": "tenantflow.dev/v1beta1",
            "kind": "WorkflowInstance",
            "metadata": {"name": "hello", "namespace": ns},
            "spec": {"workflowRef": {"name": "hello"}},
        },
    ]
    return docs


def test_the_ui_in_the_cluster_acts_with_each_requests_own_token(
    kubeconfig: Path, crds: Path, kubectl: Kubectl
) -> None:
    """`ui.enabled`: the UI as a pod on the real node, acting with the token each request
    brings (the caller's identity, as the API server says) and refusing one without."""
    assert DevCluster().has_node(), "the dev cluster has no real node (TENANTFLOW_NODE=none?)"
    ns, sa = f"tf-ui-{uuid.uuid4().hex[:6]}", f"ui-user-{uuid.uuid4().hex[:6]}"
    values = [*images.chart_values(), "--set", "replicas=0", "--set", "ui.enabled=true"]
    rendered = list(
        yaml.safe_load_all(helm(kubeconfig, "template", "t", str(CHART), *values).stdout)
    )
    bound = {
        s.get("name")
        for d in rendered
        if d and d["kind"] in ("RoleBinding", "ClusterRoleBinding")
        for s in d.get("subjects") or []
    }
    assert "t-operator-ui" not in bound, "the UI has no role of its own"
    try:
        helm(
            kubeconfig,
            "install",
            "tf",
            str(CHART),
            "--create-namespace",
            "-n",
            ns,
            "--wait",
            "--timeout",
            "150s",
            *values,
        )
        ip = kubectl(
            "get",
            "pods",
            "-n",
            ns,
            "-l",
            "app.kubernetes.io/name=tf-operator-ui",
            "-o",
            "jsonpath={.items[0].status.podIP}",
        ).stdout
        kubectl("create", "serviceaccount", sa, "-n", "default")
        token = kubectl("create", "token", sa, "-n", "default").stdout.strip()

        def get(path: str, auth: str | None) -> tuple[int, dict[str, object]]:
            headers = ["-H", f"Authorization: Bearer {auth}"] if auth else []
            done = subprocess.run(
                [
                    "curl",
                    "-s",
                    "-o",
                    "-",
                    "-w",
                    "\n%{http_code}",
                    *headers,
                    f"http://{ip}:8090{path}",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            body, _, code = done.stdout.rpartition("\n")
            return int(code), json.loads(body or "{}")

        status, me = wait_for(
            lambda: (r := get("/api/whoami", token))[0] == 200 and r, "the UI", 60
        )  # type: ignore[misc]
        assert me["user"] == f"system:serviceaccount:default:{sa}"
        assert get("/api/whoami", None)[0] == 401
        status, tenants = get("/api/tenants", token)
        assert status == 200 and tenants["listed"] is False  # this user may not list Tenants
    finally:
        kubectl("delete", "serviceaccount", sa, "-n", "default", check=False)
        helm(kubeconfig, "uninstall", "tf", "-n", ns, "--wait", "--timeout", "120s", check=False)
        kubectl("delete", "namespace", ns, "--wait=false", check=False)
