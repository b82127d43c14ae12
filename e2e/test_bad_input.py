"""Bad CLI arguments and event payloads against the real API server and operator: each gets a
clear error naming what is wrong, and nothing is lost (the instance they aimed at keeps its
inbox and still completes). Invalid manifests are in tests/integration/test_api_validation.py,
malformed runner requests in tests/sandbox/test_runner_api.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e.conftest import Tenant
from e2e.test_cli import cli

WAITS = """
async def run(event, step):
    got = await step.wait_for_event("go", type="go", timeout="1h")
    return {"by": got["payload"]["by"]}
"""
VICTIM = "bad-input-victim"
TOO_MANY = json.dumps({f"k{i}": i for i in range(65)})

CASES = [  # (arguments after `-n <ns>`, what the error must say)
    (["run", "waits", "--params", "{bad"], "--params is not valid JSON"),
    (["run", "waits", "--params", "[1, 2"], "--params is not valid JSON"),
    (["run", "waits", "--params", "@/nonexistent/params.json"], "/nonexistent/params.json"),
    (["run", "waits", "--name", "Bad_Name"], "metadata.name"),
    (["run", "waits", "--params", TOO_MANY], "spec.params"),
    (["run"], "the following arguments are required: definition"),
    (["status", "no-such-instance"], "no-such-instance not found"),
    (["status", VICTIM, "-o", "xml"], "invalid choice: 'xml'"),
    (["history", "no-such-instance"], "no-such-instance not found"),
    (["pause", "no-such-instance"], "no-such-instance not found"),
    (["terminate", "no-such-instance"], "no-such-instance not found"),
    (["logs", "no-such-instance"], "no-such-instance not found"),
    (["revisions", "no-such-definition"], "no-such-definition"),
    (["diff", "waits", "1", "99"], "revision 99 does not exist"),
    (["diff", "waits", "one", "two"], "invalid int value: 'one'"),
    (["rollback", "waits", "--to", "99"], "revision 99 does not exist"),
    (["rollback", "waits"], "one of the arguments --to --clear is required"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    # event payloads and types, through send-event
    (["send-event", VICTIM, "go", "--payload", "{bad"], "--payload is not valid JSON"),
    (["send-event", VICTIM, "go", "--payload", "@/nonexistent/ev.json"], "/nonexistent/ev.json"),
    (["send-event", VICTIM, "go", "--payload", TOO_MANY], "spec.events[0].payload"),
    (["send-event", VICTIM, ""], "spec.events[0].type"),
    (["send-event", VICTIM, "has space"], "spec.events[0].type"),
    (["send-event", VICTIM, "x" * 129], "spec.events[0].type"),
    (["send-event", VICTIM, "go-"], "spec.events[0].type"),
    (["send-event", "no-such-instance", "go"], "no-such-instance not found"),
]


@pytest.fixture(scope="module")
def victim(tenant: Tenant) -> Tenant:
    tenant.define("waits", WAITS)
    tenant.wait_revision("waits", 1)
    tenant.custom.create_namespaced_custom_object(
        "tenantflow.dev",
        "v1beta1",
        tenant.ns,
        "workflowinstances",
        {
            "apiVersion": "tenantflow.dev/v1beta1",
            "kind": "WorkflowInstance",
            "metadata": {"name": VICTIM},
            "spec": {"workflowRef": {"name": "waits"}},
        },
    )
    tenant.wait_phase(VICTIM, "Waiting")
    return tenant


def test_there_are_at_least_50_bad_inputs() -> None:
    manifests = list((Path(__file__).resolve().parents[1] / "tests/data/invalid").glob("*.yaml"))
    assert len(manifests) + len(CASES) >= 50  # plus the runner API's, fuzzed


@pytest.mark.parametrize(("args", "says"), CASES, ids=[" ".join(a)[:40] for a, _ in CASES])
def test_bad_input_gets_a_clear_error(
    victim: Tenant, kubeconfig: Path, args: list[str], says: str
) -> None:
    done = cli(kubeconfig, "-n", victim.ns, *args, check=False)
    assert done.returncode != 0, done.stdout
    assert says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_nothing_was_lost(victim: Tenant, kubeconfig: Path) -> None:
    assert victim.get(VICTIM)["spec"].get("events") in (None, []), "no bad event got in"
    assert victim.status(VICTIM)["phase"] == "Waiting"
    cli(kubeconfig, "-n", victim.ns, "send-event", VICTIM, "go", "--payload", '{"by": "ok"}')
    assert victim.wait_phase(VICTIM, "Complete")["output"] == {"by": "ok"}
