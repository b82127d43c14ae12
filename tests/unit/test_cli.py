"""The `tenantflow` CLI on click, run with click's CliRunner against the in-memory API:
its arguments (before or after the verb, as kubectl's), the errors argparse used to say
(scripts and e2e/test_bad_input.py match them), the exit codes a CI job gates on, the
kubeconfig's namespace read by the client library, and the rows it shares with the UI."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from tenantflow import __version__
from tenantflow.cli import common, exits, rollout_cmds, workflow_cmds
from tenantflow.cli.exits import Exit
from tenantflow.cli.main import cli, main
from tenantflow.storage.history import Archived, History
from tenantflow.ui import rows, views
from tenantflow.vocabulary import API_VERSION, DEFINITION, INSTANCE, TENANT
from tenantflow_dev.fake_kube import FakeKube

pytestmark = pytest.mark.unit
NS = "tenant-acme"


class Operator(FakeKube):
    """The in-memory API, with an operator that ends every instance created in `ends_in`
    (None: it leaves them Running)."""

    def __init__(self, ends_in: str | None = "Complete") -> None:
        super().__init__()
        self.ends_in = ends_in

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        created = await super().create(obj)
        phase = self.ends_in or "Running"
        steps = [{"name": "build", "kind": "do", "state": "Complete", "attempts": 1}]
        error = {"name": "ValueError", "message": "broken", "step": "build"}
        status = {"phase": phase, "revision": 1, "steps": steps, "stepCount": 1}
        status |= {"error": error} if phase == "Errored" else {}
        self.put({**created, "status": status})
        return created


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Operator:
    """The API every command of the CLI talks to in these tests."""
    kube = Operator()

    async def connect(kubeconfig: str | None, context: str | None) -> Any:
        return kube

    monkeypatch.setattr(common, "connect", connect)
    monkeypatch.setattr(workflow_cmds, "POLL", 0.0)
    monkeypatch.setattr(rollout_cmds, "POLL", 0.0)
    return kube


def tenantflow(*argv: str) -> Result:
    return CliRunner().invoke(cli, list(argv), prog_name="tenantflow")


def instance(name: str, phase: str | None, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": INSTANCE,
        "metadata": {"name": name, "namespace": NS},
        "spec": {"workflowRef": {"name": "ci"}},
        "status": {"phase": phase, **status} if phase else {},
    }


# ---------------------------------------------------------------------- exit codes
def test_the_exit_code_of_each_finished_phase() -> None:
    assert exits.of_phase("Complete") == Exit.OK == 0
    assert exits.of_phase("Errored") == Exit.FAILED == 1
    assert exits.of_phase("Terminated") == Exit.TERMINATED == 3
    with pytest.raises(ValueError, match="not a finished phase"):
        exits.of_phase("Waiting")
    assert (Exit.USAGE, Exit.TIMED_OUT) == (2, 4)


@pytest.mark.parametrize(
    ("ends_in", "code"),
    [("Complete", 0), ("Errored", 1), ("Terminated", 3)],
)
def test_run_wait_exits_with_the_code_of_the_phase_it_ended_in(
    api: Operator, ends_in: str, code: int
) -> None:
    api.ends_in = ends_in
    done = tenantflow("-n", NS, "run", "ci", "--name", "b1", "--params", '{"a": 1}', "--wait")
    assert done.exit_code == code, done.output
    assert f"Phase:     {ends_in}" in done.stdout
    assert "workflowinstance/b1 created" in done.stderr
    assert "step build" in done.stderr and f"phase {ends_in}" in done.stderr
    if code:
        assert f"tenantflow: b1 ended {ends_in}" in done.stderr
    assert api.objects[(API_VERSION, INSTANCE, NS, "b1")]["spec"]["params"] == {"a": 1}


def test_run_wait_that_runs_out_of_time_exits_4(api: Operator) -> None:
    api.ends_in = None
    done = tenantflow("-n", NS, "run", "ci", "--name", "slow", "--wait", "--timeout", "0")
    assert done.exit_code == Exit.TIMED_OUT
    assert "tenantflow: error: slow did not finish within 0s" in done.stderr


def test_run_without_wait_and_a_plain_status_exit_0_whatever_the_phase(api: Operator) -> None:
    api.ends_in = "Errored"
    started = tenantflow("-n", NS, "run", "ci", "--name", "e1")
    assert started.exit_code == 0 and started.stdout == ""
    shown = tenantflow("-n", NS, "status", "e1")
    assert shown.exit_code == 0 and "Error:     ValueError: broken" in shown.stdout
    watched = tenantflow("-n", NS, "status", "e1", "--watch")
    assert watched.exit_code == Exit.FAILED, "status --watch gates as run --wait does"


def test_start_with_an_event_says_so_on_stderr(api: Operator) -> None:
    done = tenantflow("-n", NS, "run", "ci", "--name", "s1", "--event", "go", "--wait")
    assert done.exit_code == 0
    assert "workflowinstance/s1 created with event 'go'" in done.stderr
    sent = api.objects[(API_VERSION, INSTANCE, NS, "s1")]["spec"]["events"]
    assert sent == [{"type": "go", "payload": None}]


def test_rollout_status_wait_exits_1_when_rolled_back_and_4_when_out_of_time(
    api: Operator,
) -> None:
    rollout = {
        "revision": 3,
        "fromRevision": 2,
        "phase": "RolledBack",
        "startedAt": "2026-01-01T00:00:00Z",
        "message": "rolled back to revision 2: 3 of 4 errored",
    }
    wfd = {
        "apiVersion": API_VERSION,
        "kind": DEFINITION,
        "metadata": {"name": "deploy", "namespace": NS},
        "spec": {},
        "status": {"activeRevision": 2, "rollout": rollout},
    }
    api.put(wfd)
    failed = tenantflow("-n", NS, "rollout", "status", "deploy", "--wait")
    assert failed.exit_code == 1 and "rolled back to revision 2" in failed.stderr
    shown = tenantflow("-n", NS, "rollout", "status", "deploy")
    assert shown.exit_code == 0 and "revision 3 (from 2) RolledBack" in shown.stdout
    api.put({**wfd, "status": {"rollout": {**rollout, "phase": "Progressing"}}})
    late = tenantflow("-n", NS, "rollout", "status", "deploy", "--wait", "--timeout", "0")
    assert late.exit_code == Exit.TIMED_OUT and "did not end within 0 s" in late.stderr


def test_an_error_is_one_line_on_stderr_and_exit_1(api: Operator) -> None:
    missing = tenantflow("-n", NS, "status", "nope")
    assert missing.exit_code == 1 and missing.stdout == ""
    assert missing.stderr.startswith(f"tenantflow: error: WorkflowInstance {NS}/nope not found")
    assert missing.stderr.count("\n") == 1, "one line, naming why the history was not read"
    bad = tenantflow("-n", NS, "run", "ci", "--params", "{bad")
    assert bad.exit_code == 1 and "--params is not valid JSON" in bad.stderr


def test_main_returns_the_exit_code(api: Operator) -> None:
    api.put(instance("t1", "Terminated"))
    assert main(["-n", NS, "status", "t1", "--watch"]) == Exit.TERMINATED
    assert main(["-n", NS, "status", "t1"]) == 0
    assert main(["frobnicate"]) == Exit.USAGE


# ---------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("argv", "says"),
    [  # what argparse said, which e2e/test_bad_input.py and scripts match
        (["run"], "the following arguments are required: definition"),
        (["status", "x", "-o", "xml"], "invalid choice: 'xml'"),
        (["diff", "waits", "one", "two"], "invalid int value: 'one'"),
        (["rollback", "waits"], "one of the arguments --to --clear is required"),
        (["rollback", "waits", "--to", "1", "--clear"], "not allowed with argument --to"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["reset", "f1"], "the following arguments are required: --to-step"),
        (["terminate", "--phase", "Nope"], "invalid choice: 'Nope'"),
        (["--tenant", "acme", "-n", "other", "top"], "--tenant acme is namespace tenant-acme"),
    ],
)
def test_bad_arguments_exit_2_saying_what_is_wrong(
    api: Operator, argv: list[str], says: str
) -> None:
    done = tenantflow(*argv)
    assert done.exit_code == Exit.USAGE, done.output
    assert says in done.stderr and "Usage: tenantflow" in done.stderr
    assert not api.calls, "nothing was asked of the API"


def test_the_kube_options_go_before_or_after_the_verb(api: Operator) -> None:
    api.put(instance("i1", "Waiting"))
    for argv in (
        ["-n", NS, "status", "i1"],
        ["status", "i1", "-n", NS],
        ["--tenant", "acme", "status", "i1"],
        ["status", "i1", "--tenant", "acme"],
        ["-n", "elsewhere", "status", "i1", "--tenant", "acme"],  # after the verb wins
        ["-o", "json", "status", "i1", "-n", NS],
    ):
        done = tenantflow(*argv)
        assert done.exit_code == 0, (argv, done.output)
    assert yaml.safe_load(done.stdout)["metadata"]["name"] == "i1"  # -o json before the verb
    as_yaml = tenantflow("-n", NS, "status", "i1", "-o", "yaml")
    assert yaml.safe_load(as_yaml.stdout)["status"]["phase"] == "Waiting"


def test_help_and_version() -> None:
    shown = tenantflow("--help")
    assert shown.exit_code == 0
    assert "Exit codes:" in shown.stdout and "3  the instance ended Terminated" in shown.stdout
    for verb in ("run", "status", "send-event", "rollout", "schedules", "archive", "ui"):
        assert f"  {verb} " in shown.stdout
    assert tenantflow("--version").stdout == f"tenantflow {__version__}\n"  # pyproject's
    assert "--event-payload" in tenantflow("run", "-h").stdout


def test_batch_actions_through_the_cli(api: Operator) -> None:
    for name in ("a1", "a2"):
        api.put(instance(name, "Waiting"))
    dry = tenantflow("-n", NS, "terminate", "--definition", "ci", "--dry-run")
    assert dry.exit_code == 0 and dry.stdout.startswith("would terminate 2 instances")
    refused = tenantflow("-n", NS, "terminate", "--definition", "ci")
    assert refused.exit_code == 1 and "add --yes" in refused.stderr
    done = tenantflow("-n", NS, "terminate", "--definition", "ci", "--yes")
    assert done.stdout == "terminate: 2 of 2 done\n"
    assert api.objects[(API_VERSION, INSTANCE, NS, "a1")]["spec"]["terminate"] is True


# ---------------------------------------------------------------------- the kubeconfig
def kubeconfig(path: Path, current: str, namespaces: dict[str, str | None]) -> Path:
    cluster = {"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}
    contexts = [
        {"name": name, "context": {"cluster": "c", "user": "u"} | ({"namespace": ns} if ns else {})}
        for name, ns in namespaces.items()
    ]
    body = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "contexts": contexts,
        "users": [{"name": "u", "user": {"token": "t"}}],
        "current-context": current,
    }
    path.write_text(yaml.safe_dump(body))
    return path


def test_the_namespace_of_the_kubeconfig_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    dev = {"dev": "tenant-dev", "bare": None}
    config = str(kubeconfig(tmp_path / "config", "dev", dev))
    assert common.context_namespace(config, None) == "tenant-dev"
    assert common.context_namespace(config, "bare") == "default"
    assert common.context_namespace(str(tmp_path / "missing"), None) == "default"
    other = kubeconfig(tmp_path / "other", "solo", {"solo": "tenant-solo"})
    both = f"{other}:{config}"  # a $KUBECONFIG list, merged as the client library merges it
    assert common.context_namespace(both, "solo") == "tenant-solo"
    assert common.context_namespace(both, "dev") == "tenant-dev"


def test_in_a_pod_the_namespace_is_the_service_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    (tmp_path / "namespace").write_text("tenant-pod\n")
    monkeypatch.setattr(common, "POD_NAMESPACE", tmp_path / "namespace")
    assert common.context_namespace(None, None) == "tenant-pod"


def test_no_kubeconfig_is_parsed_by_hand() -> None:
    """The client library reads kubeconfigs (merging, contexts, exec plugins): nothing in
    the CLI opens one with a YAML parser of its own."""
    package = Path(common.__file__).parent
    for source in package.glob("*.py"):
        text = source.read_text()
        assert "safe_load" not in text and "KUBE_CONFIG_DEFAULT_LOCATION" not in text, source


# ---------------------------------------------------------------------- shared rows
def tenant(name: str, status: dict[str, Any] | None) -> dict[str, Any]:
    body = {"apiVersion": API_VERSION, "kind": TENANT, "metadata": {"name": name}, "spec": {}}
    return {**body, "status": status} if status is not None else body


def test_top_counts_phases_from_the_rows_the_ui_shows(api: Operator) -> None:
    api.put(tenant("acme", {"phase": "Ready", "namespace": NS}))
    api.put(tenant("new", None))
    for name, phase in [("q1", None), ("r1", "Running"), ("e1", "Errored"), ("e2", "Errored")]:
        api.put(instance(name, phase))
    lines = tenantflow("top").stdout.splitlines()
    assert lines[0].split() == [
        *("TENANT", "PHASE", "QUEUED", "RUNNING", "WAITING", "PAUSED", "COMPLETE", "ERRORED"),
        *("COMPENSATING", "ROLLBACKFAILED"),
    ]
    assert lines[1].split() == ["acme", "Ready", "1", "1", "0", "0", "0", "2", "0", "0"]
    assert lines[2].split() == ["new", "Provisioning", "0", "0", "0", "0", "0", "0", "0", "0"]
    assert (
        rows.tenant_row(tenant("new", None))["phase"]
        == views.tenant_row(tenant("new", None))["phase"]
    )


def test_history_and_revisions_tables_are_the_shared_rows(api: Operator) -> None:
    steps = [
        {"name": "build", "kind": "do", "state": "Complete", "attempts": 1},
        {"name": "push", "kind": "do", "state": "Errored", "attempts": 2, "error": {"name": "E"}},
    ]
    api.put(instance("h1", "Errored", steps=steps))
    lines = tenantflow("-n", NS, "history", "h1").stdout.splitlines()
    assert lines[0].split() == ["STEP", "KIND", "STATE", "ATTEMPTS", "STARTED", "FINISHED", "ERROR"]
    assert lines[2].split() == ["push", "do", "Errored", "2", "E"]
    assert [rows.step_row(s)["error"] for s in steps] == [None, "E"]
    revision = {"revision": 2, "data": {"sha256": "ab" * 32, "createdAt": "2026-01-01T00:00:00Z"}}
    assert rows.revision_row(revision, active=2) == {
        "revision": 2,
        "sha256": "ab" * 32,
        "createdAt": "2026-01-01T00:00:00Z",
        "active": True,
    }
    detail = views.definition_detail(
        {"metadata": {"name": "ci", "namespace": NS}, "status": {"activeRevision": 2}},
        [copy.deepcopy(revision) | {"data": {**revision["data"], "main": "main", "files": {}}}],
        {},
    )
    assert detail["revisions"][0]["active"] is True


def test_a_definition_row_and_an_event_row() -> None:
    wfd = {
        "metadata": {"name": "ci", "namespace": NS},
        "status": {"activeRevision": 1, "latestRevision": 2, "rollout": {"phase": "Progressing"}},
    }
    assert rows.definition_row(wfd) == {
        "name": "ci",
        "namespace": NS,
        "active": 1,
        "latest": 2,
        "rollout": "Progressing",
    }
    event = {"firstTimestamp": "t0", "type": "Normal", "reason": "Started", "message": "m"}
    assert rows.kube_event(event)["time"] == "t0" and rows.kube_event(event)["count"] == 1


def test_an_instance_with_no_status_yet_is_queued_in_the_cli_as_in_the_ui(api: Operator) -> None:
    api.put(instance("fresh", None))
    assert "Phase:     Queued" in tenantflow("-n", NS, "status", "fresh").stdout
    assert views.instance_row(instance("fresh", None))["phase"] == "Queued"


def archived(kube: FakeKube, tmp_path: Path, name: str, **attributes: str) -> None:
    """`name` kept in the tenant's history (its object deleted)."""
    history = kube.histories.setdefault(NS, History(tmp_path / "history"))
    steps = [{"name": "build", "kind": "do", "state": "Complete", "attempts": 1}]
    history.archive(
        Archived(
            uid=f"uid-{name}",
            name=name,
            definition="ci",
            phase="Complete",
            created_at="2030-01-01T00:00:00Z",
            finished_at="2030-01-01T00:01:00Z",
            attributes=attributes,
            record={
                "metadata": {"name": name, "namespace": NS},
                "spec": {"workflowRef": {"name": "ci"}},
                "status": {"phase": "Complete", "steps": steps, "output": 42},
            },
        ),
        "2030-01-01T00:02:00Z",
    )


def test_status_and_history_read_an_archived_instance_where_it_lives(
    api: Operator, tmp_path: Path
) -> None:
    archived(api, tmp_path, "old-build")
    shown = tenantflow("-n", NS, "status", "old-build")
    assert shown.exit_code == 0 and "Complete" in shown.stdout and "archived" in shown.stdout
    steps = tenantflow("-n", NS, "history", "old-build")
    assert steps.exit_code == 0 and "build" in steps.stdout
    gone = tenantflow("-n", NS, "status", "never")
    assert gone.exit_code == 1 and "not found, live or in the tenant's history" in gone.stderr


def test_list_shows_live_and_archived_instances_filtered_alike(
    api: Operator, tmp_path: Path
) -> None:
    archived(api, tmp_path, "old-build", repo="acme-web")
    archived(api, tmp_path, "other-repo", repo="acme-api")
    assert tenantflow("-n", NS, "run", "ci", "--name", "new-build").exit_code == 0
    api.objects[(API_VERSION, INSTANCE, NS, "new-build")]["metadata"]["labels"] = {
        "repo": "acme-web"
    }
    listed = tenantflow("-n", NS, "list", "-l", "repo=acme-web", "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    where = {r["name"]: r["where"] for r in yaml.safe_load(listed.stdout)}
    assert where == {"new-build": "live", "old-build": "archived"}
    api.histories.clear()  # no sandbox to answer: the live ones, and why not the rest
    alone = tenantflow("-n", NS, "list")
    assert alone.exit_code == 0 and "new-build" in alone.stdout
    assert "archived instances not shown" in alone.stdout
