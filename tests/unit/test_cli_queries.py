"""`tenantflow query` (issue 36.7) against the in-memory API: the instance is read as the
user, then the query goes to the tenant's sandbox through the service proxy by the
instance's uid; here the sandbox is the real engine's read-only replay."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from tenantflow.cli import common
from tenantflow.cli.main import cli
from tenantflow.engine import advance
from tenantflow.engine.executor import query
from tenantflow.engine.journal import StepRecord
from tenantflow.engine.wire import advance_to_wire
from tenantflow.vocabulary import API_VERSION, INSTANCE
from tenantflow_dev.fake_kube import FakeKube

pytestmark = pytest.mark.unit
NS = "tenant-acme"


async def workflow(event: Any, step: Any, env: Any) -> Any:
    done: list[int] = []
    step.query("progress", lambda: {"done": len(done), "total": 3})
    step.query("item", lambda i: done[i])
    for i in range(3):
        done.append(await step.do(f"s{i}", lambda i=i: i * 10))
        if i == 1:
            await step.wait_for_event("go", type="go")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    kube = FakeKube()
    out = advance(workflow, journal=[])
    wire = advance_to_wire(out)
    kube.put(
        {
            "apiVersion": API_VERSION,
            "kind": INSTANCE,
            "metadata": {"name": "build-7", "namespace": NS},
            "spec": {"workflowRef": {"name": "ci"}},
            "status": {"phase": "Waiting", "steps": wire["journal"], "queries": wire["queries"]},
        }
    )
    journal: list[StepRecord] = out.journal
    asked: list[tuple[str, str, Any]] = []

    def sandbox(uid: str, name: str, args: Any) -> tuple[int, dict[str, Any]]:
        asked.append((uid, name, args))
        if uid != "uid-build-7":
            return 404, {"error": {"name": "InstanceUnknown", "message": "no advance"}}
        with ThreadPoolExecutor(1) as pool:  # the replay's own event loop, off the CLI's
            answer = pool.submit(query, workflow, name, args, journal=journal).result()
        as_of = {"steps": len(journal), "phase": "Waiting"}
        if answer.error is None:
            return 200, {"query": name, "value": answer.value, "asOf": as_of}
        status = 404 if answer.error["name"] == "UnknownQuery" else 422
        return status, {"error": answer.error, "registered": list(answer.registered)}

    kube.queries[NS] = sandbox
    kube.asked = asked  # type: ignore[attr-defined]

    async def connect(kubeconfig: str | None, context: str | None) -> Any:
        return kube

    monkeypatch.setattr(common, "connect", connect)
    return kube


def tenantflow(*argv: str) -> Result:
    return CliRunner().invoke(cli, list(argv), prog_name="tenantflow")


def test_query_prints_the_value_as_of_the_journal(api: FakeKube) -> None:
    shown = tenantflow("-n", NS, "query", "build-7", "progress")
    assert shown.exit_code == 0, shown.stderr
    assert '"done": 2' in shown.stdout and "as of 3 journal entries, Waiting" in shown.stdout
    as_json = tenantflow("-n", NS, "query", "build-7", "item", "--args", "[1]", "-o", "json")
    assert as_json.exit_code == 0, as_json.stderr
    assert yaml.safe_load(as_json.stdout)["value"] == 10
    one = tenantflow("-n", NS, "query", "build-7", "item", "--args", "0")  # one argument
    assert one.exit_code == 0 and one.stdout.startswith("0")
    # only the uid of the instance the user read goes to the sandbox
    assert api.asked[0] == ("uid-build-7", "progress", [])  # type: ignore[attr-defined]
    url = next(c[2] for c in api.calls if c[0] == "request")
    assert (
        url
        == f"/api/v1/namespaces/{NS}/services/sandbox:history/proxy/v1/queries/uid-build-7/progress"
    )


def test_a_failed_query_exits_1_with_a_clear_error(api: FakeKube) -> None:
    unknown = tenantflow("-n", NS, "query", "build-7", "nope")
    assert unknown.exit_code == 1
    assert "UnknownQuery" in unknown.stderr and "registered: item, progress" in unknown.stderr
    broken = tenantflow("-n", NS, "query", "build-7", "item", "--args", "[9]")
    assert broken.exit_code == 1
    assert "query 'item' raised IndexError" in broken.stderr
    assert "its queries: item, progress" in broken.stderr
    missing = tenantflow("-n", NS, "query", "build-8", "progress")
    assert missing.exit_code == 1 and "not found" in missing.stderr
    bad = tenantflow("-n", NS, "query", "build-7", "item", "--args", "[1")
    assert bad.exit_code == 1 and "--args is not valid JSON" in bad.stderr


def test_without_a_sandbox_to_answer_it_says_so(api: FakeKube) -> None:
    api.queries.clear()
    shown = tenantflow("-n", NS, "query", "build-7", "progress")
    assert shown.exit_code == 1 and "cannot answer now (503)" in shown.stderr
