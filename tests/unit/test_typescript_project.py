"""A TypeScript author's own project (issue 38.4): `tenantflow typescript-init` in a
throw-away directory outside the repository, then `deno check` and `deno task test`
against the SDK and test kit this installation ships; and the Python test kit running a
TypeScript workflow with its children, secrets and events."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tenantflow.cli.main import cli
from tenantflow.engine.typescript import deno_binary
from tenantflow.testing import WorkflowSource, WorkflowTestEnv

pytestmark = pytest.mark.unit


def deno(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(deno_binary()).parent}:{os.environ['PATH']}"}
    env |= {"NO_COLOR": "1", "DENO_DIR": str(project / ".deno")}
    return subprocess.run(
        [deno_binary(), *args], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_new_project_type_checks_and_its_tests_run_on_the_engine(tmp_path: Path) -> None:
    project = tmp_path / "my-workflows"
    result = CliRunner().invoke(cli, ["typescript-init", str(project)])
    assert result.exit_code == 0, result.output
    assert deno(project, "check", "workflow.ts", "workflow_test.ts").returncode == 0

    passed = deno(project, "task", "test")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "1 passed" in passed.stdout

    # a wrong expectation fails: the kit reports the engine's result, not a canned one
    test = project / "workflow_test.ts"
    test.write_text(test.read_text().replace('"hello, ada"', '"hello, bob"'))
    failed = deno(project, "task", "test")
    assert failed.returncode != 0 and "wrong greeting: hello, ada" in failed.stdout + failed.stderr


def test_typing_mistakes_are_caught_by_deno_check(tmp_path: Path) -> None:
    project = tmp_path / "typed"
    assert CliRunner().invoke(cli, ["typescript-init", str(project), "--no-example"]).exit_code == 0
    (project / "workflow.ts").write_text(
        'import type { WorkflowStep } from "tenantflow";\n'
        "export async function run(event: unknown, step: WorkflowStep) {\n"
        '  await step.sleep("nap", { minutes: 5 });\n'  # not a duration
        "}\n"
    )
    checked = deno(project, "check", "workflow.ts")
    assert checked.returncode != 0 and "WorkflowDuration" in checked.stdout + checked.stderr


def test_init_keeps_what_a_deno_json_already_has(tmp_path: Path) -> None:
    (tmp_path / "deno.json").write_text('{"imports": {"std/": "./std/"}, "tasks": {"fmt": "x"}}')
    assert CliRunner().invoke(cli, ["typescript-init", str(tmp_path)]).exit_code == 0
    text = (tmp_path / "deno.json").read_text()
    assert '"std/": "./std/"' in text and '"fmt": "x"' in text and '"tenantflow/testing"' in text


PARENT = """
export async function run(event, step, env) {
  const { token } = await env.secrets.get("git");
  const built = await step.child("build", "build", { repo: event.payload.repo });
  const approval = await step.waitForEvent("approval", { type: "approved", timeout: "2 hours" });
  return { built, by: approval.payload.by, tokenLength: token.length };
}
"""
CHILD = """
export async function run(event, step) {
  await step.sleep("compile", "10 minutes");
  return await step.do("artifact", async () => `${event.payload.repo}.tar`);
}
"""


def test_the_python_kit_runs_typescript_with_children_secrets_and_events(tmp_path: Path) -> None:
    for name, text in (("parent", PARENT), ("build", CHILD)):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.ts").write_text(text)
    env = WorkflowTestEnv(
        workflows={"build": WorkflowSource.from_directory(tmp_path / "build", main="build")},
        secrets={"git": {"token": "t0ken"}},
    )
    parent = WorkflowSource.from_directory(tmp_path / "parent", main="parent")
    result: Any = env.run_sync(parent, {"repo": "acme"}, events=[(3600, "approved", {"by": "bob"})])
    assert result.phase == "Complete", result.error
    assert result.output == {"built": "acme.tar", "by": "bob", "tokenLength": 5}
    assert result.elapsed.total_seconds() == 3600  # the child's 10 min and the hour: virtual


def test_the_typescript_kit_asks_queries_after_the_run(tmp_path: Path) -> None:
    """RunOptions.queries: each answered after the run, as of its journal (step.query in
    TypeScript, the handler called in Deno; a finished instance keeps answering), or the
    query's error; in the order asked."""
    project = tmp_path / "queried"
    assert CliRunner().invoke(cli, ["typescript-init", str(project), "--no-example"]).exit_code == 0
    (project / "workflow.ts").write_text(
        "export async function run(event, step) {\n"
        "  const done: number[] = [];\n"
        '  step.query("progress", () => ({ done: done.length }));\n'
        '  step.query("item", (i: number) => done[i]);\n'
        "  for (const n of [1, 2, 3]) done.push(await step.do(`s${n}`, async () => n * 10));\n"
        "}\n"
    )
    (project / "workflow_test.ts").write_text(
        'import { WorkflowTestEnv } from "tenantflow/testing";\n'
        'Deno.test("queries", async () => {\n'
        "  const env = new WorkflowTestEnv();\n"
        '  const result = await env.run(new URL("./workflow.ts", import.meta.url), {\n'
        '    queries: [["progress"], ["item", 1], ["nope"]],\n'
        "  });\n"
        "  const got = JSON.stringify(result.queries);\n"
        '  if (result.phase !== "Complete") throw new Error(JSON.stringify(result.error));\n'
        "  const progress = result.queries[0].value as { done: number };\n"
        "  if (progress.done !== 3 || result.queries[1].value !== 20\n"
        '      || result.queries[2].error?.name !== "UnknownQuery") throw new Error(got);\n'
        "  console.log(got);\n"
        "});\n"
    )
    passed = deno(project, "task", "test")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert '"name":"item","args":[1],"value":20' in passed.stdout
