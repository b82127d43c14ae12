"""`tenantflow typescript-init [DIR]`: a TypeScript workflow project, ready for `deno
check` and `deno task test`, pointing at the SDK this installation ships.

Why a command: the SDK's types (`tenantflow`, also as `cloudflare:workers`) and its test
kit (`tenantflow/testing`) are files of the installed Python package, and the test kit
runs this Python; both paths differ per machine, so they are written into the project's
deno.json (merged into one that exists: other imports and tasks are kept).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tenantflow.engine.typescript import SDK_SPECIFIERS, runtime_dir

EXAMPLE = """\
import type { WorkflowEvent, WorkflowStep, WorkflowEnv } from "tenantflow";

type Params = { name: string };

export async function run(event: WorkflowEvent<Params>, step: WorkflowStep, env: WorkflowEnv) {
  const greeting = await step.do("greet", async () => `hello, ${event.payload.name}`);
  await step.sleep("wait a day", "1 day");
  env.log.info("greeted", { greeting });
  return { greeting };
}
"""

EXAMPLE_TEST = """\
import { WorkflowTestEnv } from "tenantflow/testing";

Deno.test("it greets after a day", async () => {
  const env = new WorkflowTestEnv();
  const workflow = new URL("./workflow.ts", import.meta.url);
  const result = await env.run(workflow, { params: { name: "ada" } });
  if (result.phase !== "Complete") throw new Error(JSON.stringify(result.error));
  const { greeting } = result.output as { greeting: string };
  if (greeting !== "hello, ada") throw new Error(`wrong greeting: ${greeting}`);
  if (result.elapsedSeconds < 86400) throw new Error("the day did not pass on the virtual clock");
});
"""


def deno_json(existing: dict[str, object]) -> dict[str, object]:
    """`existing` deno.json with the SDK's imports and a `test` task added."""
    sdk = runtime_dir()
    imports = dict(existing.get("imports") or {})  # type: ignore[call-overload]
    imports.update({spec: (sdk / "tenantflow.ts").as_uri() for spec in SDK_SPECIFIERS})
    imports["tenantflow/testing"] = (sdk / "testing.ts").as_uri()
    tasks = dict(existing.get("tasks") or {})  # type: ignore[call-overload]
    python = sys.executable
    tasks["test"] = (
        f"TENANTFLOW_PYTHON={python} deno test --allow-run={python} --allow-read "
        "--allow-env=TENANTFLOW_PYTHON"
    )
    return {**existing, "imports": imports, "tasks": tasks}


@click.command("typescript-init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--example/--no-example", default=True, help="Write workflow.ts and its test.")
def typescript_init(directory: Path, example: bool) -> None:
    """Set up DIRECTORY for TypeScript workflows: deno.json (the SDK's imports, a test
    task) and, unless --no-example, workflow.ts with workflow_test.ts."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "deno.json"
    try:
        existing = json.loads(config.read_text()) if config.exists() else {}
    except ValueError as exc:
        raise click.ClickException(f"{config}: not JSON ({exc}); fix or remove it") from None
    if not isinstance(existing, dict):
        raise click.ClickException(f"{config}: must hold a JSON object")
    config.write_text(json.dumps(deno_json(existing), indent=2) + "\n")
    written = [config]
    if example:
        for name, text in (("workflow.ts", EXAMPLE), ("workflow_test.ts", EXAMPLE_TEST)):
            path = directory / name
            if not path.exists():
                path.write_text(text)
                written.append(path)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"next: cd {directory} && deno task test")
