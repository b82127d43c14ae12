"""The CI pipeline example, for real, on the dev cluster's node: a tenant's multi-file
pipeline clones a repository from a git server with a token from a Secret, through its
egress proxy (the only way out of its sandbox), in the platform's image that has a git
client; runs the tests in a subprocess; waits for approval; deploys into env.db."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from conftest import wait_for
from e2e import gitserver
from e2e.conftest import GROUP, VERSION, Tenant, mount_secret
from tenantflow_dev.devcluster import images

pytestmark = pytest.mark.node
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ci-pipeline-git"
GIT_IP = "10.246.9.1"  # an address this test adds to the node bridge: local, never routed out
GIT_HOST = "git.ci.example"
TOKEN = "ci-e2e-token-4f9a1b2c"


@pytest.fixture
def git(tmp_path: Path) -> Iterator[gitserver.GitServer]:
    with gitserver.serve(tmp_path, GIT_IP, GIT_HOST, TOKEN) as server:
        yield server


def allow(port: int, host: str = GIT_HOST) -> list[dict[str, Any]]:
    return [{"host": host, "ports": [port], "addresses": [GIT_IP]}]


@pytest.fixture
def tenant(
    tenant_factory: Callable[..., Tenant],
    kubectl: Callable[..., Any],
    git: gitserver.GitServer,
    tmp_path: Path,
) -> Tenant:
    """The tenant as a CI platform sets it up: image, Secret, allow-list, pipeline code."""
    tenant = tenant_factory(
        sandbox={
            "image": images.ref("sandbox-example"),
            "secrets": ["git"],
            "egressHosts": allow(git.port),
        }
    )
    meta = client.V1ObjectMeta(name="git")
    tenant.core.create_namespaced_secret(
        tenant.ns, client.V1Secret(metadata=meta, string_data={"token": TOKEN})
    )
    mount_secret(tenant, kubectl, "git")
    # the code as it lives in Git: the example's kustomization (real .py files, a
    # generated ConfigMap whose hashed name kustomize writes into the definition)
    checkout = shutil.copytree(EXAMPLE, tmp_path / "ci-pipeline-git")
    kustomization = checkout / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace("namespace: tenant-ci", f"namespace: {tenant.ns}")
    )
    kubectl("apply", "-k", str(checkout))
    tenant.wait_revision("ci-pipeline", 1)
    return tenant


def test_the_pipeline_clones_tests_waits_for_approval_and_deploys(
    tenant: Tenant, git: gitserver.GitServer
) -> None:
    good = tenant.start("ci-pipeline", {"repo": git.url})
    bad = tenant.start("ci-pipeline", {"repo": git.url, "ref": "broken"})
    wait_for(
        lambda: (
            (s := tenant.status(good)).get("phase") == "Errored"
            or any(step["name"] == "approval" for step in s.get("steps") or [])
            or None
        ),
        "the pipeline built and waiting for approval",
        180,
    )
    status = tenant.status(good)
    assert status["phase"] == "Waiting", (status.get("error"), status.get("steps"))
    tenant.send_event(good, "approved", {"by": "alice"})
    done = tenant.wait_phase(good, "Complete", "Errored", timeout=120)
    assert done["phase"] == "Complete", done
    assert done["output"] == {"commit": git.commits["main"], "tests": 3, "by": "alice"}
    deployed = tenant.query("SELECT repo, commit_sha, by FROM deployments")
    assert deployed == [(git.url, git.commits["main"], "alice")]
    # failing tests end the instance, naming them
    failed = tenant.wait_phase(bad, "Errored", "Complete", timeout=180)
    assert failed["phase"] == "Errored", failed
    assert "2 of 3 tests failed" in failed["error"]["message"]
    assert "test_calc.CalcTest.test_mul" in failed["error"]["message"]
    assert git.commits["broken"][:12] in failed["error"]["message"]
    # the token went to the git server (authenticated fetches), never into a status
    assert any(r.endswith("git-upload-pack 200") for r in git.requests), git.requests
    seen = json.dumps([tenant.get(good), tenant.get(bad)])
    assert TOKEN not in seen


def test_without_the_git_host_in_the_allow_list_the_proxy_refuses_the_clone(
    tenant: Tenant, git: gitserver.GitServer
) -> None:
    tenant.custom.patch_cluster_custom_object(
        GROUP,
        VERSION,
        "tenants",
        tenant.name,
        {"spec": {"sandbox": {"egressHosts": allow(git.port, "elsewhere.ci.example")}}},
    )

    def rolled_out() -> bool:  # every proxy pod left is a new one, and it is ready
        pods = tenant.core.list_namespaced_pod(
            tenant.ns, label_selector="app.kubernetes.io/name=egress-proxy"
        ).items
        return len(pods) == 1 and all(
            GIT_HOST not in " ".join(p.spec.containers[0].args)
            and bool(p.status.container_statuses)
            and all(c.ready for c in p.status.container_statuses)
            for p in pods
        )

    wait_for(rolled_out, "the egress proxy without the git host", 120)
    requests = len(git.requests)
    inst = tenant.start("ci-pipeline", {"repo": git.url})
    status = tenant.wait_phase(inst, "Errored", "Complete", timeout=180)
    assert status["phase"] == "Errored", status
    message = status["error"]["message"]
    assert (
        "403" in message
        and f"{GIT_HOST}:{git.port} is not in the tenant's egress allow-list" in (message)
    ), message
    assert len(git.requests) == requests, "nothing reached the git server"


FETCH_TS = """
export async function run(event, step, env) {
  const { token } = await env.secrets.get("git");
  const auth = "Basic " + btoa(`ci:${token}`);
  const allowed = await step.do("fetch refs", async () => {
    const r = await fetch(`${event.payload.repo}/info/refs?service=git-upload-pack`, {
      headers: { Authorization: auth },
    });
    await r.arrayBuffer();
    return r.status;
  });
  const refused = await step.do("fetch elsewhere", async () => {
    try {
      const r = await fetch("http://not-allowed.ci.example/");
      return r.status;
    } catch (e) {
      return (e as Error).name;
    }
  });
  return { allowed, refused };
}
"""


def test_typescript_fetch_goes_through_the_egress_proxy(
    tenant: Tenant, git: gitserver.GitServer
) -> None:
    """Deno's fetch in a sandbox pod reaches an allowed host only through the tenant's
    egress proxy (HTTP_PROXY), with a token from env.secrets; another host is refused."""
    tenant.define("fetch-ts", FETCH_TS, language="typescript")
    requests = len(git.requests)
    inst = tenant.start("fetch-ts", {"repo": git.url})
    done = tenant.wait_phase(inst, "Complete", "Errored", timeout=180)
    assert done["phase"] == "Complete", done.get("error")
    assert done["output"] == {"allowed": 200, "refused": 403}
    assert len(git.requests) == requests + 1
    assert git.requests[-1] == "GET /calc.git/info/refs 200"  # authenticated, via the proxy
    assert TOKEN not in json.dumps(tenant.get(inst))
