"""The `tenantflow` CLI against the running operator: run, send-event, revisions, diff,
rollback, status, history, pause/resume, terminate."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import wait_for
from e2e.conftest import Tenant, cli

V1 = """
async def run(event, step):
    got = await step.wait_for_event("go", type="go", timeout="1h")
    return {"version": 1, "by": got["payload"]["by"]}
"""


def test_run_send_event_and_wait(tenant: Tenant, kubeconfig: Path) -> None:
    tenant.define("cli-flow", V1)
    tenant.wait_revision("cli-flow", 1)
    cli(kubeconfig, "-n", tenant.ns, "run", "cli-flow", "--name", "c1", "--params", '{"a": 1}')
    tenant.wait_phase("c1", "Waiting")
    status = cli(kubeconfig, "-n", tenant.ns, "status", "c1").stdout
    assert "Phase:     Waiting" in status and "event go" in status
    sent = cli(kubeconfig, "-n", tenant.ns, "send-event", "c1", "go", "--payload", '{"by": "x"}')
    assert "sent to c1" in sent.stdout
    done = json.loads(cli(kubeconfig, "-n", tenant.ns, "status", "c1", "-o", "json").stdout)
    assert done["spec"]["events"] == [{"type": "go", "payload": {"by": "x"}}]
    tenant.wait_phase("c1", "Complete")
    history = cli(kubeconfig, "-n", tenant.ns, "history", "c1").stdout.splitlines()
    assert history[0].split()[:3] == ["STEP", "KIND", "STATE"]
    assert history[1].split()[:3] == ["go", "event", "Complete"]


def test_start_with_an_event_and_wait(tenant: Tenant, kubeconfig: Path) -> None:
    """Signal-with-start (issue 36.6): the instance starts with the event in its inbox and
    completes with its payload at once, its exit code 0 as a CI job would gate on it."""
    tenant.define("cli-flow", V1)
    tenant.wait_revision("cli-flow", 1)
    args = ["-n", tenant.ns, "run", "cli-flow", "--name", "c2", "--event", "go"]
    done = cli(kubeconfig, *args, "--event-payload", '{"by": "hook"}', "--wait")
    assert "created with event 'go'" in done.stderr and "Complete" in done.stdout
    again = cli(kubeconfig, *args, "--event-payload", '{"by": "hook"}', check=False)
    assert again.returncode != 0 and "has finished" in again.stderr


def test_revisions_diff_and_rollback(
    tenant: Tenant, kubeconfig: Path, kubectl: Callable[..., Any]
) -> None:
    tenant.define("cli-ver", V1)
    tenant.wait_revision("cli-ver", 1)
    tenant.define("cli-ver", V1.replace('"version": 1', '"version": 2'))
    tenant.wait_revision("cli-ver", 2)
    listing = cli(kubeconfig, "-n", tenant.ns, "revisions", "cli-ver").stdout.splitlines()
    assert [line.split()[0] for line in listing] == ["REVISION", "1", "2"]
    assert listing[2].rstrip().endswith("*"), "revision 2 is active"
    diff = cli(kubeconfig, "-n", tenant.ns, "diff", "cli-ver", "1", "2").stdout
    assert '-    return {"version": 1' in diff and '+    return {"version": 2' in diff
    assert diff.startswith("--- cli-ver@1\n+++ cli-ver@2")
    bad = cli(kubeconfig, "-n", tenant.ns, "rollback", "cli-ver", "--to", "9", check=False)
    assert bad.returncode == 1 and "revision 9 does not exist" in bad.stderr
    cli(kubeconfig, "-n", tenant.ns, "rollback", "cli-ver", "--to", "1")
    tenant.wait_revision("cli-ver", 1)
    cli(kubeconfig, "-n", tenant.ns, "run", "cli-ver", "--name", "after-rollback")
    tenant.wait_phase("after-rollback", "Waiting")
    cli(
        kubeconfig,
        "-n",
        tenant.ns,
        "send-event",
        "after-rollback",
        "go",
        "--payload",
        '{"by": "y"}',
    )
    done = tenant.wait_phase("after-rollback", "Complete")
    assert done["output"] == {"version": 1, "by": "y"} and done["revision"] == 1
    # Git syncs the definition as it has it (server-side apply): the rollback stays
    manifest = {
        "apiVersion": "tenantflow.dev/v1beta1",
        "kind": "WorkflowDefinition",
        "metadata": {"name": "cli-ver", "namespace": tenant.ns},
        "spec": {"source": {"inline": V1.replace('"version": 1', '"version": 2')}},
    }

    def sync(spec: dict[str, object]) -> None:
        body = json.dumps({**manifest, "spec": {**manifest["spec"], **spec}})
        kubectl("apply", "--server-side", "--field-manager=argocd", "-f", "-", input=body)

    sync({})
    definition = tenant.wait_revision("cli-ver", 1)
    assert definition["metadata"]["annotations"]["tenantflow.dev/rollback-to"] == "1"
    assert definition["status"]["rolledBackTo"] == 1 and "pinnedRevision" not in definition["spec"]
    sync({"pinnedRevision": 2})  # Git's own pin wins over the CLI's rollback
    tenant.wait_revision("cli-ver", 2)
    sync({})
    tenant.wait_revision("cli-ver", 1)  # Git dropped its pin: the rollback holds again
    cli(kubeconfig, "-n", tenant.ns, "rollback", "cli-ver", "--clear")
    assert tenant.wait_revision("cli-ver", 2)["status"].get("rolledBackTo") is None


def test_pause_resume_terminate(tenant: Tenant, kubeconfig: Path) -> None:
    tenant.define("cli-long", V1)
    tenant.wait_revision("cli-long", 1)
    cli(kubeconfig, "-n", tenant.ns, "run", "cli-long", "--name", "p1")
    tenant.wait_phase("p1", "Waiting")
    cli(kubeconfig, "-n", tenant.ns, "pause", "p1")
    tenant.wait_phase("p1", "Paused")
    cli(kubeconfig, "-n", tenant.ns, "resume", "p1")
    tenant.wait_phase("p1", "Waiting")
    cli(kubeconfig, "-n", tenant.ns, "terminate", "p1")
    tenant.wait_phase("p1", "Terminated")
    wait_for(
        lambda: "Terminated" in cli(kubeconfig, "-n", tenant.ns, "logs", "p1").stdout,
        "the Terminated event in `tenantflow logs`",
        15,
    )


def test_unknown_instance_is_a_clear_error(tenant: Tenant, kubeconfig: Path) -> None:
    result = cli(kubeconfig, "-n", tenant.ns, "status", "nope", check=False)
    assert result.returncode == 1
    assert f"WorkflowInstance {tenant.ns}/nope not found" in result.stderr


BROKEN_B = """
async def run(event, step, env):
    env.db.execute('CREATE TABLE IF NOT EXISTS tries (step TEXT)')
    def body(name):
        env.db.execute('INSERT INTO tries VALUES (?)', (name,))
        if name == 'b' and VERSION == 1:
            raise ValueError('b is broken in v1')
        return env.db.query("SELECT count(*) AS n FROM tries WHERE step = 'a'")[0]['n']
    await step.do('a', lambda: body('a'))
    a_runs = await step.do('b', lambda: body('b'), retries={'limit': 0})
    return {'a_runs': a_runs, 'version': VERSION}
"""


def test_retry_and_reset_to_a_step_on_the_fixed_revision(tenant: Tenant, kubeconfig: Path) -> None:
    tenant.define("fixme", BROKEN_B.replace("VERSION", "1"))
    tenant.wait_revision("fixme", 1)
    cli(kubeconfig, "-n", tenant.ns, "run", "fixme", "--name", "f1")
    assert tenant.wait_phase("f1", "Errored")["error"]["name"] == "ValueError"
    # a retry on the same (broken) revision runs b again, and only b
    retried = cli(kubeconfig, "-n", tenant.ns, "retry", "f1", "--reason", "flaky?")
    assert "1 journal entries cut, running again from b on revision 1" in retried.stdout
    wait_for(lambda: len(tenant.status("f1").get("resets") or []) == 1, "the retry recorded")
    assert tenant.wait_phase("f1", "Errored")["error"]["name"] == "ValueError"
    # the fix is revision 2: reset to b on it; a is not run again
    tenant.define("fixme", BROKEN_B.replace("VERSION", "2"))
    tenant.wait_revision("fixme", 2)
    args = ["reset", "f1", "--to-step", "b", "--revision", "2", "--reason", "fixed b"]
    cli(kubeconfig, "-n", tenant.ns, *args)
    done = wait_for(
        lambda: (st := tenant.status("f1")).get("phase") == "Complete" and st,
        "f1 Complete on revision 2",
    )
    assert done["output"] == {"a_runs": 1, "version": 2} and done["revision"] == 2  # type: ignore[index]
    last = done["resets"][-1]  # type: ignore[index]
    assert (last["toStep"], last["fromRevision"], last["toRevision"]) == ("b", 1, 2)
    assert last["by"], "who asked, from the API server"
    refused = cli(kubeconfig, "-n", tenant.ns, "reset", "f1", "--to-step", "nope", check=False)
    assert refused.returncode == 1 and "'nope' is not in the journal" in refused.stderr


def test_batch_terminate_by_definition(tenant: Tenant, kubeconfig: Path) -> None:
    tenant.define("many", V1)
    tenant.wait_revision("many", 1)
    names = [tenant.start("many") for _ in range(3)]
    for name in names:
        tenant.wait_phase(name, "Waiting")
    select = ["-n", tenant.ns, "terminate", "--definition", "many", "--phase", "Waiting"]
    dry = cli(kubeconfig, *select, "--dry-run").stdout
    assert dry.startswith("would terminate 3 instances") and all(n in dry for n in names)
    unconfirmed = cli(kubeconfig, *select, check=False)
    assert unconfirmed.returncode == 1 and "add --yes" in unconfirmed.stderr
    assert cli(kubeconfig, *select, "--yes").stdout.strip() == "terminate: 3 of 3 done"
    for name in names:
        tenant.wait_phase(name, "Terminated")
