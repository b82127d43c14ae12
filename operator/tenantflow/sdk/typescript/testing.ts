/**
 * Test kit for TypeScript workflows: `deno test` runs a workflow on tenantflow's own
 * engine (the one in the sandbox), with a virtual clock, events, children, secrets and
 * env.db, and no cluster. Set up a project with `tenantflow typescript-init`, then:
 *
 *   import { WorkflowTestEnv } from "tenantflow/testing";
 *   Deno.test("approves", async () => {
 *     const env = new WorkflowTestEnv({ secrets: { git: { token: "t0ken" } } });
 *     const result = await env.run(new URL("./workflow.ts", import.meta.url), {
 *       params: { repo: "acme" },
 *       events: [[3600, "approved", { by: "bob" }]],   // an hour after the start
 *     });
 *     if (result.phase !== "Complete") throw new Error(JSON.stringify(result.error));
 *   });
 *
 * A workflow is its main file; every .ts/.mts/.js/.mjs file beside it is one of its
 * modules (as `WorkflowSource.from_directory`). Sleeps take no time: when everything
 * waits, the clock jumps to the next wake-up or event. `Date.now()` is the machine's.
 * The kit runs `$TENANTFLOW_PYTHON -m tenantflow.testing.serve` (the Python that has
 * tenantflow installed; `tenantflow typescript-init` writes it into the test task).
 */

export interface StepEntry {
  name: string;
  state: string;
  attempts?: number;
  output?: unknown;
  error?: { name: string; message: string; traceback?: string };
  [field: string]: unknown;
}

export interface TestResult {
  phase: string;
  output: unknown;
  error: { name: string; message: string; step?: string; traceback?: string } | null;
  steps: StepEntry[];
  waitingFor: Record<string, unknown> | null;
  logs: { level: string; message: string; step?: string; fields: Record<string, unknown> }[];
  advances: number;
  elapsedSeconds: number;
  children: Record<string, TestResult>;
  instanceId: string;
  attributes: Record<string, string>;
  /** The answers to RunOptions.queries, in the order asked. */
  queries: QueryAnswer[];
}

export interface QueryAnswer {
  name: string;
  args: unknown[];
  value?: unknown;
  /** UnknownQuery, QueryFailed, QueryResultTooLarge, ... */
  error?: { name: string; message: string };
}

export interface RunOptions {
  params?: unknown;
  /** [seconds after the start, type, payload] */
  events?: [number, string, unknown][];
  entrypoint?: string;
  instanceId?: string;
  /** Terminate it this many seconds after the start (`tenantflow terminate`). */
  terminateAfter?: number;
  /** With terminateAfter: run the rollbacks of its completed steps (`--rollback`). */
  rollback?: boolean;
  /** Queries (`step.query`) asked after the run, as of its journal then:
   * `[["progress"], ["item", 0]]` (a name, then the handler's arguments). */
  queries?: [string, ...unknown[]][];
}

function where(file: string | URL): { dir: string; main: string } {
  const path = file instanceof URL ? file.pathname : file.startsWith("file:") ? new URL(file).pathname : file;
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash) || "/" : ".";
  const name = path.slice(slash + 1);
  const dot = name.lastIndexOf(".");
  return { dir, main: dot > 0 ? name.slice(0, dot) : name };
}

export class WorkflowTestEnv {
  constructor(
    private readonly options: {
      /** What step.child may start, by definition name: each one's main file. */
      workflows?: Record<string, string | URL>;
      /** env.secrets: {secret: {key: value}}. */
      secrets?: Record<string, Record<string, string>>;
    } = {},
  ) {}

  /** Run `workflow` (its main file) to the end, or until nothing more can happen. */
  async run(workflow: string | URL, options: RunOptions = {}): Promise<TestResult> {
    const request = {
      workflow: { ...where(workflow), entrypoint: options.entrypoint ?? "run" },
      workflows: Object.fromEntries(Object.entries(this.options.workflows ?? {}).map(([n, f]) => [n, where(f)])),
      secrets: this.options.secrets ?? {},
      params: options.params ?? null,
      events: options.events ?? [],
      instanceId: options.instanceId,
      terminateAfter: options.terminateAfter ?? null,
      rollback: options.rollback ?? false,
      queries: options.queries ?? [],
    };
    const python = Deno.env.get("TENANTFLOW_PYTHON") ?? "python3";
    const child = new Deno.Command(python, {
      args: ["-m", "tenantflow.testing.serve"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(JSON.stringify(request)));
    await writer.close();
    const { code, stdout, stderr } = await child.output();
    const text = new TextDecoder().decode(stdout);
    let answer: any;
    try {
      answer = JSON.parse(text);
    } catch {
      throw new Error(`${python} -m tenantflow.testing.serve failed (${code}): ${new TextDecoder().decode(stderr)}`);
    }
    if (code !== 0 || answer.error !== undefined && answer.phase === undefined) {
      throw new Error(`WorkflowTestEnv: ${answer.error ?? new TextDecoder().decode(stderr)}`);
    }
    return answer as TestResult;
  }
}
