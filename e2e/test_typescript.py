"""TypeScript workflows end to end (issues 38 and 43): Deno in the real sandbox pod, under
the worker's seccomp filter and limits, with the same journal, events, logs, rollbacks
and errors as a Python workflow, on the real operator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import wait_for
from e2e.conftest import Tenant, cli

PIPELINE = """
import { WorkflowEntrypoint, WorkflowEvent, WorkflowStep } from "cloudflare:workers";

type Params = { repo: string };

export class Pipeline extends WorkflowEntrypoint<any, Params> {
  async run(event: WorkflowEvent<Params>, step: WorkflowStep) {
    const checkout = await step.do("checkout", async () => {
      console.log(`cloning ${event.payload.repo}`);
      await this.env.db.execute("CREATE TABLE IF NOT EXISTS builds (repo TEXT)");
      await this.env.db.execute("INSERT INTO builds VALUES (?)", [event.payload.repo]);
      return { sha: "abc123" };
    });
    const [unit, lint] = await Promise.all([
      step.do("unit tests", { retries: { limit: 2, delay: "1 second" } }, async () => 128),
      step.do("lint", async () => "clean"),
    ]);
    await step.sleep("cool down", "2 seconds");
    const approval = await step.waitForEvent<{ by: string }>("approval", { type: "approved" });
    this.env.log.info("approved", { by: approval.payload.by });
    const [{ n }] = await this.env.db.query("SELECT count(*) AS n FROM builds");
    return { sha: checkout.sha, unit, lint, by: approval.payload.by, builds: n };
  }
}
"""

SAGA = """
import { NonRetryableError } from "tenantflow";

export async function run(event, step, env) {
  const undo = {
    rollback: async (ctx) => ({ undid: ctx.step, output: ctx.output, because: ctx.error.name }),
  };
  await step.do("one", async () => 1, undo);
  await step.do("two", async () => 2, undo);
  await step.do("three", async () => {
    throw new NonRetryableError("the third step failed");
  }, undo);
}
"""

BROKEN = """
export async function run(event, step) {
  await step.do("fine", async () => 1);
  const missing: any = undefined;
  return missing.field;
}
"""


def step(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in status["steps"] if s["name"] == name)


def test_a_typescript_pipeline_runs_in_the_sandbox_pod(tenant: Tenant, kubeconfig: Path) -> None:
    tenant.define("pipeline", PIPELINE, language="typescript")
    inst = tenant.start("pipeline", {"repo": "acme-web"})
    waiting: dict[str, Any] = wait_for(  # type: ignore[assignment]
        lambda: (s := tenant.status(inst)).get("waitingFor", {}).get("kind") == "event" and s,
        f"{inst} waiting for the approval event",
        90,
    )
    assert step(waiting, "checkout")["output"] == {"sha": "abc123"}
    tenant.send_event(inst, "approved", {"by": "ada"})
    done = tenant.wait_phase(inst, "Complete", "Errored", timeout=60)
    assert done["phase"] == "Complete", done.get("error")
    assert done["output"] == {
        "sha": "abc123", "unit": 128, "lint": "clean", "by": "ada", "builds": 1,
    }  # fmt: skip
    assert [s["name"] for s in done["steps"]][:3] == ["checkout", "unit tests", "lint"]
    logs = cli(kubeconfig, "-n", tenant.ns, "logs", inst, "--step", "checkout").stdout
    assert "cloning acme-web" in logs  # console.log in a step body is that step's line


def test_a_typescript_saga_rolls_back_in_reverse(tenant: Tenant) -> None:
    tenant.define("saga", SAGA, language="typescript")
    inst = tenant.start("saga")
    done = tenant.wait_phase(inst, "Errored", "RollbackFailed", timeout=90)
    assert done["phase"] == "Errored", done.get("error")
    assert done["error"]["name"] == "NonRetryableError" and done["error"]["step"] == "three"
    names = [s["name"] for s in done["steps"]]
    assert names == ["one", "two", "three", "compensation", "rollback:two", "rollback:one"]
    assert step(done, "rollback:two")["output"] == {
        "undid": "two", "output": 2, "because": "NonRetryableError",
    }  # fmt: skip


def test_a_typescript_error_names_its_file_and_line(tenant: Tenant) -> None:
    tenant.define("broken", BROKEN, language="typescript")
    inst = tenant.start("broken")
    done = tenant.wait_phase(inst, "Errored", timeout=90)
    assert done["error"]["name"] == "TypeError"
    assert "broken/workflow.ts:5" in done["error"]["traceback"]
