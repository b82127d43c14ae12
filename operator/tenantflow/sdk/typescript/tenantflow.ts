/**
 * tenantflow's SDK for TypeScript and JavaScript workflows.
 *
 * A workflow module exports `async function run(event, step, env)`, or a class that
 * extends `WorkflowEntrypoint` (Cloudflare Workflows' shape: `this.env`, `run(event,
 * step)`). Import from "tenantflow"; "cloudflare:workers" and "cloudflare:workflows"
 * name this module too, so a Workflows program runs with its import line unchanged.
 *
 * The engine behind `step` is tenantflow's own (the same journal, retries, replay rules
 * and limits as Python workflows): this module only carries calls to it. Everything a
 * step returns, and every payload, must be JSON.
 */

/** "10s", "250ms", "5 minutes", "1 hour", or a number of milliseconds (as in Workflows). */
export type WorkflowDuration = string | number;

export type WorkflowBackoff = "constant" | "linear" | "exponential";

export interface WorkflowStepConfig {
  retries?: { limit?: number; delay?: WorkflowDuration; backoff?: WorkflowBackoff; maxDelay?: WorkflowDuration };
  timeout?: WorkflowDuration;
}

/** What a rollback is called with: the step's recorded output and what triggered it. */
export interface RollbackContext<T = unknown> {
  step: string;
  output: T;
  error: { name: string; message: string; step?: string };
  attempt: number;
  instanceId: string;
  params: unknown;
}

export interface StepRollback<T = unknown> {
  rollback: (ctx: RollbackContext<T>) => unknown | Promise<unknown>;
  rollbackConfig?: WorkflowStepConfig;
}

export interface WorkflowEvent<T = unknown> {
  readonly payload: Readonly<T>;
  readonly timestamp: Date;
  readonly instanceId: string;
}

export interface WorkflowStepEvent<T = unknown> {
  type: string;
  payload: T;
  timestamp: Date;
}

/** A plan written at runtime: file name -> text (plan.ts, or plan.py) and the main module. */
export interface ChildSource {
  files: Record<string, string>;
  /** The module (file name without its extension) that exports `run`; default "main". */
  main?: string;
}

export interface ChildOptions {
  /** Pin the child to a revision of its definition. */
  revision?: number;
  /**
   * Record this source as the definition's revision (unless it holds it already) and run
   * the child pinned to it. The definition is created, labelled as written at runtime,
   * by the first such write; a replay never writes it again (the revision is journaled).
   */
  source?: ChildSource;
}

/** `step.child(name, {definition, source, params})`: a child running a plan written at runtime. */
export interface ChildSpec extends ChildOptions {
  definition: string;
  params?: unknown;
}

export interface WorkflowStep {
  do<T>(name: string, callback: () => T | Promise<T>, rollback?: StepRollback<T>): Promise<T>;
  do<T>(
    name: string,
    config: WorkflowStepConfig,
    callback: () => T | Promise<T>,
    rollback?: StepRollback<T>,
  ): Promise<T>;
  sleep(name: string, duration: WorkflowDuration): Promise<void>;
  sleepUntil(name: string, timestamp: Date | number | string): Promise<void>;
  waitForEvent<T = unknown>(
    name: string,
    options: { type: string; timeout?: WorkflowDuration },
  ): Promise<WorkflowStepEvent<T>>;
  /** Start another definition of this tenant as a child instance and wait for its output. */
  child<T = unknown>(name: string, definition: string, params?: unknown, options?: ChildOptions): Promise<T>;
  /** The same, as one object: `step.child("run-plan", {definition: "plan", source: {files, main}, params})`. */
  child<T = unknown>(name: string, spec: ChildSpec): Promise<T>;
  /** Search attributes the definition declares (spec.searchAttributes); null removes one. */
  setAttributes(values: Record<string, string | number | boolean | null>): Promise<void>;
  /** Register a query handler: `tenantflow query INSTANCE name --args JSON` calls
   * `handler(...args)` after a read-only replay of the journal and answers with its JSON
   * value. Not a step: not journaled, not awaited; a plain function, not an async one. */
  query(name: string, handler: (...args: any[]) => unknown): void;
}

export interface WorkflowLog {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warning(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export type Row = Record<string, unknown>;

/** The tenant's SQLite database (the same one Python workflows use, with its limits). */
export interface TenantDatabase {
  query(sql: string, params?: unknown[] | Record<string, unknown>): Promise<Row[]>;
  /** Returns the number of rows changed. */
  execute(sql: string, params?: unknown[] | Record<string, unknown>): Promise<number>;
}

export interface WorkflowSecrets {
  /** The Secret `name` the Tenant's spec.sandbox.secrets gives: key -> value. */
  get(name: string): Promise<Record<string, string>>;
}

export interface WorkflowEnv {
  readonly tenant: string;
  readonly instanceId: string;
  readonly db: TenantDatabase;
  readonly secrets: WorkflowSecrets;
  readonly log: WorkflowLog;
}

/** Cloudflare Workflows' base class: `class MyWorkflow extends WorkflowEntrypoint { async run(event, step) {} }`. */
export abstract class WorkflowEntrypoint<Env = WorkflowEnv, T = unknown> {
  constructor(
    public readonly ctx: { instanceId: string },
    public readonly env: Env,
  ) {}
  abstract run(event: WorkflowEvent<T>, step: WorkflowStep): Promise<unknown>;
}

/** Throw inside a step's callback to fail the step at once, without retries. */
export class NonRetryableError extends Error {
  constructor(message: string, name?: string) {
    super(message);
    this.name = name ?? "NonRetryableError";
  }
}

/** A step failed for good (retries exhausted, timed out, or a NonRetryableError). */
export class StepError extends Error {
  constructor(
    public readonly step: string,
    public readonly errorName: string,
    public readonly errorMessage: string,
    public readonly attempts: number,
  ) {
    super(`step '${step}' failed after ${attempts} attempt(s): ${errorName}: ${errorMessage}`);
    this.name = "StepError";
  }
}

/** `step.waitForEvent` saw no matching event before its timeout. */
export class WaitTimeout extends Error {
  constructor(public readonly step: string, message: string) {
    super(message);
    this.name = "WaitTimeout";
  }
}
