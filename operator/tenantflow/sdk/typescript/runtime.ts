/**
 * The process that runs one advance of a TypeScript or JavaScript workflow
 * (tenantflow.engine.typescript starts it, one per advance, under the worker's limits).
 *
 * It decides nothing: every step call goes to the Python engine, which replays the
 * journal, records, retries and answers. Lines on stdin are the engine's messages; lines
 * on stdout that begin with RS (\x1e) are ours, any other output is the tenant's own.
 * After handling each message it says `idle` once nothing it started can run any more
 * without an answer (a macrotask later: every promise continuation has run by then), so
 * the engine can tell "waiting for a step" from "still working".
 */
import { AsyncLocalStorage } from "node:async_hooks";
import {
  type ChildOptions,
  type ChildSpec,
  NonRetryableError,
  StepError,
  WaitTimeout,
  WorkflowEntrypoint,
  type WorkflowStepConfig,
} from "./tenantflow.ts";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Message = Record<string, any>;

const RS = "\x1e";
const encoder = new TextEncoder();
const pending = new Map<number, { resolve: (v: any) => void; reject: (e: unknown) => void }>();
const bodies = new Map<number, { fn: (...args: any[]) => unknown; rollback?: (ctx: any) => unknown }>();
const current = new AsyncLocalStorage<number>(); // the engine's call number a body runs under
let nextId = 1;
let sourceRoot = "";
let label = "workflow";

function write(text: string): void {
  const data = encoder.encode(text);
  for (let off = 0; off < data.length; ) off += Deno.stdout.writeSync(data.subarray(off));
}

function send(msg: Message): void {
  write(RS + JSON.stringify(msg) + "\n");
}

// As deep as the engine keeps a value (tenantflow.jsonsafe). Refused here, where it is
// returned or logged: nested past ~1,000 levels, the line carrying it was one the engine's
// JSON parser could not read, and the step waited for its timeout.
const MAX_DEPTH = 64;

/** A value crossing to the engine must be plain JSON: say what is not, and where
 * (`where` names the value: "step 's' result"). undefined is left out of an object and
 * is null in an array, as JSON.stringify does. */
export function checkJson(value: unknown, where: string): Json {
  if (value === undefined) return null;
  const seen = new Set<unknown>();
  const refuse = (what: string, path: string): never => {
    throw new TypeError(`${where} is not JSON: ${what}${path ? ` at ${path}` : ""}`);
  };
  const walk = (v: unknown, path: string, depth: number): Json => {
    if (depth > MAX_DEPTH) return refuse(`a value nested deeper than ${MAX_DEPTH} levels`, path);
    if (v === null || typeof v === "string" || typeof v === "boolean") return v as Json;
    if (typeof v === "number") return Number.isFinite(v) ? v : refuse(String(v), path);
    if (typeof v !== "object") return refuse(`a ${typeof v}`, path);
    if (seen.has(v)) return refuse("a value that refers to itself", path);
    seen.add(v);
    try {
      if (Array.isArray(v)) {
        return v.map((x, i) => (x === undefined ? null : walk(x, `${path}[${i}]`, depth + 1)));
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        const kind = (v as object).constructor?.name ?? "object";
        return refuse(`a ${kind} (give plain objects, arrays, strings, numbers)`, path);
      }
      const out: { [key: string]: Json } = {};
      for (const [k, x] of Object.entries(v as object)) {
        if (x === undefined) continue;
        out[k] = walk(x, `${path}.${k}`, depth + 1);
      }
      return out;
    } finally {
      seen.delete(v);
    }
  };
  return walk(value, "", 0);
}

/** "5 minutes" / 300000 (ms, as in Workflows) → "300s"; other strings go as they are. */
const UNITS: Record<string, number> = {
  millisecond: 0.001, ms: 0.001, second: 1, sec: 1, s: 1, minute: 60, min: 60, m: 60,
  hour: 3600, h: 3600, day: 86400, d: 86400, week: 604800, w: 604800,
};
export function duration(value: unknown): unknown {
  if (typeof value === "number") return `${value / 1000}s`;
  if (typeof value !== "string") return value;
  const m = /^\s*(\d+(?:\.\d+)?)\s+([a-z]+?)s?\s*$/i.exec(value);
  if (m && UNITS[m[2].toLowerCase()] !== undefined) return `${Number(m[1]) * UNITS[m[2].toLowerCase()]}s`;
  return value;
}

function config(c: WorkflowStepConfig | undefined): Message {
  if (c === undefined || c === null) return {};
  if (typeof c !== "object") throw new TypeError("step.do: the config must be an object like {retries: {limit: 3}, timeout: '30s'}");
  const retries = c.retries ? { ...c.retries, delay: duration(c.retries.delay), maxDelay: duration(c.retries.maxDelay) } : undefined;
  return checkJson({ retries, timeout: duration(c.timeout) }, "step config") as Message;
}

function request(op: string, args: Message): Promise<any> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    send({ t: "req", id, op, call: current.getStore() ?? null, ...args });
  });
}

const ORIGIN = Symbol("the engine's reply this error came in");

/** The engine's error as the workflow catches it; it remembers which reply brought it, so
 * one that escapes run() is the engine's own again (a StepError reports its step). */
function fromEngine(error: Message, id: number): Error {
  let err: Error;
  if (error.kind === "StepError") err = new StepError(error.step, error.name, error.message, error.attempts);
  else if (error.kind === "WaitTimeout") err = new WaitTimeout(error.step, error.message);
  else {
    err = new Error(error.message);
    err.name = error.name ?? "Error";
  }
  (err as any)[ORIGIN] = id;
  return err;
}

function rootUrl(): string {
  return sourceRoot ? new URL(sourceRoot + "/", "file:///").href : "\0";
}

/** The tenant's files named as `label/file.ts`, not where this sandbox keeps them. */
function tidy(text: string): string {
  return text.split(rootUrl()).join(`${label}/`);
}

/** A stack that shows the tenant's own files as `<label/file.ts>`, nothing of ours. */
function stackOf(err: unknown): string | undefined {
  const stack = err instanceof Error ? err.stack : undefined;
  if (!stack) return undefined;
  const here = new URL(".", import.meta.url).href;
  const root = rootUrl();
  const lines = stack.split("\n").filter((line, i) => i === 0 || (line.includes(root) && !line.includes(here)));
  return lines.map(tidy).join("\n");
}

function errorOf(err: unknown): Message {
  if (err instanceof Error) {
    return {
      name: err.name || "Error",
      message: tidy(String(err.message)),
      stack: stackOf(err) ?? null,
      nonRetryable: err instanceof NonRetryableError,
      origin: (err as any)[ORIGIN] ?? null,
    };
  }
  return { name: "Error", message: `a non-Error was thrown: ${String(err)}`, stack: null, nonRetryable: false };
}

const step = {
  do(name: string, a: unknown, b?: unknown, c?: unknown): Promise<unknown> {
    const [cfg, fn, rb] = typeof a === "function" ? [undefined, a, b] : [a, b, c];
    if (typeof fn !== "function") {
      return Promise.reject(new TypeError(`step.do('${name}'): give a callback, as step.do(name, [config], async () => ...)`));
    }
    const undo = rb as { rollback?: unknown; rollbackConfig?: WorkflowStepConfig } | undefined;
    if (undo !== undefined && typeof undo?.rollback !== "function") {
      return Promise.reject(new TypeError(`step.do('${name}'): the last argument must be {rollback: async (ctx) => ..., rollbackConfig?}`));
    }
    let args: Message;
    try {
      args = { name, config: config(cfg as WorkflowStepConfig), rollback: undo ? config(undo.rollbackConfig) : null };
    } catch (e) {
      return Promise.reject(e);
    }
    const id = nextId;
    bodies.set(id, { fn: fn as () => unknown, rollback: undo?.rollback as (ctx: unknown) => unknown });
    return request("do", args);
  },
  sleep: (name: string, d: unknown) => request("sleep", { name, duration: duration(d) }),
  sleepUntil(name: string, when: unknown) {
    const at = when instanceof Date ? when.toISOString() : typeof when === "number" ? new Date(when).toISOString() : when;
    return request("sleepUntil", { name, when: at });
  },
  async waitForEvent(name: string, options: { type: string; timeout?: unknown }) {
    const got = await request("waitForEvent", { name, type: options?.type, timeout: duration(options?.timeout) ?? null });
    return { ...got, timestamp: new Date(got.timestamp) };
  },
  child(name: string, definition: unknown, params?: unknown, options?: ChildOptions) {
    const spec = (typeof definition === "object" && definition !== null ? definition : { ...options, definition, params }) as ChildSpec;
    try {
      return request("child", {
        name,
        definition: spec.definition,
        params: checkJson(spec.params, "child params"),
        revision: spec.revision ?? null,
        source: spec.source === undefined ? null : checkJson(spec.source, "child source"),
      });
    } catch (e) {
      return Promise.reject(e);
    }
  },
  setAttributes: (values: Record<string, unknown>) => request("setAttributes", { values: checkJson(values, "attributes") }),
  query(name: string, handler: unknown): void {
    if (typeof handler !== "function") {
      throw new TypeError(`step.query('${name}'): give a function, as step.query(name, (...args) => value)`);
    }
    bodies.set(nextId, { fn: handler as (...args: any[]) => unknown });
    // the engine checks the name; one it refuses fails the instance there, with the reason
    request("query", { name }).catch(() => {});
  },
};

function logger(level: string) {
  return (message: string, fields?: Record<string, unknown>) => {
    send({ t: "log", level, message: String(message), fields: checkJson(fields ?? {}, "log fields"), call: current.getStore() ?? null });
  };
}

function printer(stream: string) {
  return (...args: unknown[]) => {
    const text = args.map((a) => (typeof a === "string" ? a : Deno.inspect(a))).join(" ");
    send({ t: "out", stream, text, call: current.getStore() ?? null });
  };
}

function environment(start: Message) {
  return Object.freeze({
    tenant: start.tenant as string,
    instanceId: start.event.instanceId as string,
    db: Object.freeze({
      query: (sql: string, params?: unknown) => request("db", { method: "query", sql, params: checkJson(params ?? [], "db params") }),
      execute: (sql: string, params?: unknown) => request("db", { method: "execute", sql, params: checkJson(params ?? [], "db params") }),
    }),
    secrets: Object.freeze({ get: (name: string) => request("secret", { name }) }),
    log: Object.freeze({ debug: logger("debug"), info: logger("info"), warning: logger("warning"), warn: logger("warning"), error: logger("error") }),
  });
}

async function entry(start: Message): Promise<(event: unknown, step: unknown, env: unknown) => Promise<unknown>> {
  const module = await import(new URL(start.main, "file:///").href);
  const name: string = start.entrypoint;
  const found = module[name];
  if (typeof found === "function" && !(found.prototype instanceof WorkflowEntrypoint)) return found;
  const classes = Object.values(module).filter((v) => typeof v === "function" && (v as any).prototype instanceof WorkflowEntrypoint);
  const cls = (typeof found === "function" ? found : module.default?.prototype instanceof WorkflowEntrypoint ? module.default : classes.length === 1 ? classes[0] : undefined) as any;
  if (cls === undefined) {
    const err = new Error(`${label}/${start.mainFile}: no exported function '${name}' (spec.entrypoint) and no single exported class extending WorkflowEntrypoint; export async function ${name}(event, step, env)`);
    err.name = "EntrypointMissing";
    throw err;
  }
  return (event, stepApi, env) => new cls({ instanceId: (event as any).instanceId }, env).run(event, stepApi);
}

async function begin(start: Message): Promise<void> {
  sourceRoot = start.root;
  label = start.label;
  const event = Object.freeze({ ...start.event, timestamp: new Date(start.event.timestamp) });
  let run;
  try {
    run = await entry(start);
  } catch (err) {
    send({ t: "done", ok: false, error: errorOf(err), loading: true });
    return;
  }
  Promise.resolve()
    .then(() => run(event, step, environment(start)))
    .then(
      (value) => {
        let out: Json;
        try {
          out = checkJson(value, "run()'s result");
        } catch (err) {
          send({ t: "done", ok: false, error: errorOf(err) });
          return;
        }
        send({ t: "done", ok: true, value: out });
      },
      (err) => send({ t: "done", ok: false, error: errorOf(err) }),
    );
}

function call(msg: Message): void {
  const body = bodies.get(msg.id);
  const fn = msg.kind === "rollback" ? body?.rollback : body?.fn;
  if (fn === undefined) {
    send({ t: "ret", call: msg.call, ok: false, error: { name: "EngineError", message: `no step body ${msg.id}`, stack: null, nonRetryable: true } });
    return;
  }
  const invoke = msg.kind === "query" ? () => answer(fn, msg.ctx) : msg.kind === "rollback" ? () => fn(msg.ctx) : () => fn();
  const what = msg.kind === "query" ? `query '${msg.step}' value` : `step '${msg.step}' result`;
  current.run(msg.call, () =>
    Promise.resolve()
      .then(invoke)
      .then(
        (value) => {
          let out: Json;
          try {
            out = checkJson(value, what);
          } catch (err) {
            send({ t: "ret", call: msg.call, ok: false, error: { ...errorOf(err), nonRetryable: true } });
            return;
          }
          send({ t: "ret", call: msg.call, ok: true, value: out });
        },
        (err) => send({ t: "ret", call: msg.call, ok: false, error: errorOf(err) }),
      ),
  );
}

/** A query handler's value, called with the query's arguments. A Promise is refused, as
 * an awaitable is of a Python handler: the replay has stopped, and whatever the handler
 * would await (a step) would never come. */
function answer(fn: (...args: any[]) => unknown, args: unknown): unknown {
  const value = fn(...(Array.isArray(args) ? args : []));
  if (value !== null && typeof value === "object" && typeof (value as any).then === "function") {
    throw new TypeError("a query handler must return its value, not a Promise: use a plain function, not an async one");
  }
  return value;
}

async function handle(msg: Message): Promise<void> {
  if (msg.t === "start") await begin(msg);
  else if (msg.t === "reply") {
    const waiter = pending.get(msg.id);
    pending.delete(msg.id);
    if (waiter) msg.ok ? waiter.resolve(msg.value) : waiter.reject(fromEngine(msg.error, msg.id));
  } else if (msg.t === "call") call(msg);
}

globalThis.console.log = printer("stdout");
globalThis.console.info = printer("stdout");
globalThis.console.debug = printer("stdout");
globalThis.console.warn = printer("stderr");
globalThis.console.error = printer("stderr");

let buffered = "";
const decoder = new TextDecoder();
for await (const chunk of Deno.stdin.readable) {
  buffered += decoder.decode(chunk, { stream: true });
  let nl;
  while ((nl = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    const msg = JSON.parse(line) as Message;
    handle(msg).then(() => setTimeout(() => send({ t: "idle", seq: msg.seq }), 0));
  }
}
