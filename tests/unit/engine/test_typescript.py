"""TypeScript and JavaScript workflows (issue 38): run by a real Deno process per advance,
driven by the Python engine, so the journal, replay rules, retries and compensation are
the same as Python's. Each test runs real tenant TypeScript through `advance`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tenantflow.engine import typescript
from tenantflow.engine.executor import advance, query
from tenantflow.engine.journal import StepState
from tenantflow.engine.loader import revision
from tenantflow.engine.outcome import Complete, Errored, RolledBack, Waiting
from tenantflow.engine.state import InboxEvent
from tenantflow.engine.typescript import GuestCode, typescript_workflow
from tenantflow.lifecycle.source import Code, check
from tenantflow.storage.database import TenantDatabase
from tenantflow.testing import WorkflowSource, WorkflowTestEnv

pytestmark = pytest.mark.unit
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def ts(source: str, **files: str) -> Any:
    return typescript_workflow(
        GuestCode({"workflow.ts": source, **files}, "workflow.ts", heap_bytes=256 << 20)
    )


def later(seconds: float) -> Any:
    return lambda: NOW + dt.timedelta(seconds=seconds)


@pytest.fixture
def db(tmp_path: Path) -> Any:
    database = TenantDatabase(tmp_path / "tenant.sqlite3")
    yield database
    database.close()


STEPS = """
import { NonRetryableError, StepError } from "tenantflow";
export async function run(event, step, env) {
  const a = await step.do("one", async () => {
    console.log("in one");
    await env.db.execute("INSERT INTO runs (step) VALUES (?)", ["one"]);
    return { n: event.payload.n + 1 };
  });
  env.log.info("after one", { a: a.n });
  const [b, c] = await Promise.all([
    step.do("two", async () => a.n * 2),
    step.do("three", { retries: { limit: 2, delay: 0 } }, async () => "c"),
  ]);
  try {
    await step.do("bad", async () => { throw new NonRetryableError("nope"); });
  } catch (e) {
    if (!(e instanceof StepError)) throw e;
    env.log.info("caught", { name: e.errorName, attempts: e.attempts });
  }
  await step.sleep("nap", "5 seconds");
  return { a, b, c };
}
"""


def test_steps_run_once_and_replay_from_the_journal(db: Any) -> None:
    db.execute("CREATE TABLE runs (step TEXT)")
    fn = ts(STEPS)
    first = advance(fn, params={"n": 1}, db=db, now=lambda: NOW)
    assert isinstance(first.outcome, Waiting) and first.outcome.waiting_for["step"] == "nap"
    states = {r.name: (r.state, r.output, r.attempts) for r in first.journal}
    assert states["one"] == (StepState.COMPLETE, {"n": 2}, 1)
    assert states["two"][:2] == (StepState.COMPLETE, 4)
    assert states["three"][:2] == (StepState.COMPLETE, "c")
    assert states["bad"][0] is StepState.ERRORED and states["bad"][2] == 1  # no retry
    lines = [(line["level"], line["message"], line.get("step")) for line in first.logs]
    assert ("stdout", "in one", "one") in lines  # console.log in a body is that step's
    assert ("info", "after one", None) in lines
    caught = next(line for line in first.logs if line["message"] == "caught")
    assert caught["fields"] == {"name": "NonRetryableError", "attempts": 1}

    second = advance(fn, params={"n": 1}, db=db, journal=first.journal, now=later(6))
    assert second.outcome == Complete(output={"a": {"n": 2}, "b": 4, "c": "c"})
    assert second.executed == []  # nothing ran again: every body was in the journal
    assert db.query("SELECT count(*) AS n FROM runs") == [{"n": 1}]
    assert second.logs == []  # replayed lines are not logged twice


def test_a_failing_body_is_retried_by_the_engine(db: Any) -> None:
    db.execute("CREATE TABLE tries (n INTEGER)")
    fn = ts(
        """
export async function run(event, step, env) {
  return await step.do("flaky", { retries: { limit: 3, delay: "1 second" } }, async () => {
    await env.db.execute("INSERT INTO tries VALUES (1)");
    const [{ n }] = await env.db.query("SELECT count(*) AS n FROM tries");
    if (n < 2) throw new TypeError(`try ${n}`);
    return n;
  });
}
"""
    )
    first = advance(fn, db=db, now=lambda: NOW)
    rec = first.journal[0]
    assert rec.state is StepState.RETRYING and rec.error is not None
    assert rec.error["name"] == "TypeError" and rec.error["message"] == "try 1"
    assert "workflow/workflow.ts:" in rec.error["traceback"]  # the TS file and line
    second = advance(fn, db=db, journal=first.journal, now=later(2))
    assert second.outcome == Complete(output=2)


def test_an_uncaught_error_names_the_typescript_line(db: Any) -> None:
    fn = ts(
        """
export async function run(event, step, env) {
  await step.do("fine", async () => 1);
  const broken: any = null;
  return broken.field;
}
"""
    )
    result = advance(fn, db=db, now=lambda: NOW)
    assert isinstance(result.outcome, Errored)
    error = result.outcome.error
    assert error["name"] == "TypeError"
    assert "workflow/workflow.ts:5" in error["traceback"]  # source-mapped: the TS line
    assert "runtime.ts" not in error["traceback"]  # none of the SDK's frames


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("new Map()", "step 's' result is not JSON: a Map (give plain objects"),
        ("({ when: new Date() })", "step 's' result is not JSON: a Date (give plain"),
        ("({ n: [1, NaN] })", "step 's' result is not JSON: NaN at .n[1]"),
        ("10n", "step 's' result is not JSON: a bigint"),
    ],
)
def test_a_step_result_must_be_json(db: Any, body: str, problem: str) -> None:
    fn = ts(f'export async function run(e, step) {{ return step.do("s", async () => {body}); }}')
    result = advance(fn, db=db, now=lambda: NOW)
    assert isinstance(result.outcome, Errored)
    rec = result.journal[0]
    assert rec.state is StepState.ERRORED and rec.attempts == 1  # not retried: it would not change
    assert rec.error is not None and problem in rec.error["message"]


def test_non_determinism_outside_steps_is_caught_on_replay(db: Any) -> None:
    fn = ts(
        """
export async function run(event, step) {
  await step.do(`pick-${Math.random()}`, async () => 1);
  await step.sleep("wait", "1s");
}
"""
    )
    first = advance(fn, db=db, now=lambda: NOW)
    assert isinstance(first.outcome, Waiting)
    second = advance(fn, db=db, journal=first.journal, now=later(2))
    assert isinstance(second.outcome, Errored)
    assert second.outcome.error["name"] == "NonDeterminism"


def test_a_timer_outside_a_step_is_an_invalid_await(db: Any) -> None:
    fn = ts(
        "export async function run(e, step) {"
        " await new Promise((r) => setTimeout(r, 200)); return 1; }"
    )
    result = advance(fn, db=db, now=lambda: NOW)
    assert isinstance(result.outcome, Errored)
    assert result.outcome.error["name"] == "InvalidAwait"


def test_a_cloudflare_workflows_class_runs_with_its_import_line_unchanged(db: Any) -> None:
    fn = ts(
        """
import { WorkflowEntrypoint, WorkflowEvent, WorkflowStep } from "cloudflare:workers";
import { NonRetryableError } from "cloudflare:workflows";

type Params = { email: string };

export class OnboardingWorkflow extends WorkflowEntrypoint<unknown, Params> {
  async run(event: WorkflowEvent<Params>, step: WorkflowStep) {
    const user = await step.do("fetch user", async () => ({ email: event.payload.email }));
    await step.sleep("wait a day", "1 day");
    const approval = await step.waitForEvent<{ ok: boolean }>("approval", {
      type: "approved",
      timeout: "1 hour",
    });
    if (!approval.payload.ok) throw new NonRetryableError("not approved");
    return { user, at: approval.timestamp.toISOString() };
  }
}
"""
    )
    params = {"email": "a@example.test"}
    first = advance(fn, params=params, db=db, now=lambda: NOW)
    assert isinstance(first.outcome, Waiting) and first.outcome.waiting_for["kind"] == "sleep"
    day = 86400
    second = advance(fn, params=params, db=db, journal=first.journal, now=later(day + 1))
    assert isinstance(second.outcome, Waiting) and second.outcome.event_types == {"approved"}
    event = InboxEvent("approved", {"ok": True}, NOW + dt.timedelta(seconds=day + 5))
    third = advance(
        fn, params=params, db=db, journal=second.journal, inbox=[event], now=later(day + 6)
    )
    assert third.outcome == Complete(output={"user": params, "at": "2030-01-02T00:00:05.000Z"})


def test_rollbacks_run_newest_first_when_a_later_step_fails(db: Any) -> None:
    fn = ts(
        """
export async function run(event, step, env) {
  const undo = (what) => ({ rollback: async (ctx) => {
    console.log(`undoing ${what}`);
    env.log.info("undo", { step: ctx.step, output: ctx.output, why: ctx.error.name });
    return `undid ${what}`;
  } });
  await step.do("book flight", async () => "F1", undo("flight"));
  await step.do("book hotel", async () => "H1", undo("hotel"));
  await step.do("book car", { retries: { limit: 0 } }, async () => { throw new Error("no cars"); });
}
"""
    )
    result = advance(fn, db=db, now=lambda: NOW)
    assert isinstance(result.outcome, RolledBack)
    undone = [
        (line["fields"]["step"], line["fields"]["output"])
        for line in result.logs
        if line["message"] == "undo"
    ]
    assert undone == [("book hotel", "H1"), ("book flight", "F1")]
    printed = [(ln["message"], ln.get("step")) for ln in result.logs if ln["level"] == "stdout"]
    assert printed == [  # a rollback's lines are its own, as in Python
        ("undoing hotel", "rollback:book hotel"),
        ("undoing flight", "rollback:book flight"),
    ]


def test_modules_import_each_other_and_the_entrypoint_is_checked(db: Any) -> None:
    fn = ts(
        'import { double } from "./helpers.ts";\n'
        "export async function run(e, step) {"
        ' return await step.do("d", async () => double(e.payload)); }',
        **{"helpers.ts": "export const double = (n: number): number => n * 2;\n"},
    )
    assert advance(fn, params=21, db=db, now=lambda: NOW).outcome == Complete(output=42)
    missing = advance(ts("export async function main() {}"), db=db, now=lambda: NOW)
    assert isinstance(missing.outcome, Errored)
    assert missing.outcome.error["name"] == "EntrypointMissing"
    syntax = advance(ts("export async function run( {"), db=db, now=lambda: NOW)
    assert isinstance(syntax.outcome, Errored)
    assert syntax.outcome.error["name"] == "SyntaxError"
    assert "at workflow/workflow.ts:1:" in syntax.outcome.error["message"]  # not the sandbox's path
    assert "tenantflow-deno" not in syntax.outcome.error["message"]


def test_deno_permissions_are_a_second_wall(db: Any) -> None:
    fn = ts(
        """
export async function run(event, step) {
  const tries = {
    read: () => Deno.readTextFileSync("/etc/hostname"),
    run: () => new Deno.Command("/bin/true").outputSync(),
    env: () => Deno.env.get("PATH"),
    ffi: () => Deno.dlopen("libc.so.6", {}),
    write: () => Deno.writeTextFileSync("planted.txt", "x"),
  };
  const out: Record<string, string> = {};
  for (const [name, attempt] of Object.entries(tries)) {
    try { attempt(); out[name] = "allowed"; } catch (e) { out[name] = (e as Error).name; }
  }
  return out;
}
"""
    )
    result = advance(fn, db=db, now=lambda: NOW)
    assert isinstance(result.outcome, Complete)
    assert result.outcome.output == {
        "read": "NotCapable",
        "run": "NotCapable",
        "env": "NotCapable",
        "ffi": "NotCapable",
        "write": "NotCapable",
    }


def test_the_heap_is_capped(db: Any) -> None:
    fn = typescript_workflow(
        GuestCode(
            {
                "workflow.ts": """
export async function run(event, step) {
  const hoard: string[][] = [];
  while (true) hoard.push(new Array(1_000_000).fill("x"));
}
"""
            },
            "workflow.ts",
            heap_bytes=64 << 20,
        )
    )
    result = advance(fn, db=db, now=lambda: NOW)
    assert isinstance(result.outcome, Errored)
    assert result.outcome.error["name"] == "RuntimeExited"
    assert "out of memory" in result.outcome.error["message"]


def test_the_loader_and_the_operators_check_know_the_language() -> None:
    code = Code.single("export async function run(event, step, env) {}", "typescript")
    assert code.main_file == "workflow.ts" and check(code).ok
    assert not check(Code.single("async function run() {}", "javascript")).ok
    mixed = check(Code({"main.ts": "export async function run() {}", "x.py": ""}, "main"))
    assert mixed.reason == "InvalidFileName"
    with revision({"workflow.mjs": "export async function run() { return 7 }"}, "workflow") as fn:
        assert advance(fn, now=lambda: NOW).outcome == Complete(output=7)


def test_an_uncaught_step_failure_reports_the_steps_own_error_as_in_python(db: Any) -> None:
    fn = ts(
        """
import { NonRetryableError } from "tenantflow";
export async function run(event, step) {
  if (event.payload === "event") await step.waitForEvent("ok?", { type: "ok", timeout: "1s" });
  await step.do("three", async () => { throw new NonRetryableError("the third step failed"); });
}
"""
    )
    failed = advance(fn, db=db, now=lambda: NOW)
    assert isinstance(failed.outcome, Errored)
    assert failed.outcome.error == {
        "name": "NonRetryableError",
        "message": "the third step failed",
        "step": "three",
    }
    waiting = advance(fn, params="event", db=db, now=lambda: NOW)
    timed_out = advance(fn, params="event", db=db, journal=waiting.journal, now=later(2))
    assert isinstance(timed_out.outcome, Errored)
    assert timed_out.outcome.error["name"] == "WaitTimeout"
    assert timed_out.outcome.error["step"] == "ok?"


def test_sleep_until_and_a_terminate_with_rollback_in_a_later_process(tmp_path: Path) -> None:
    """The rollbacks run in an advance after the one that declared them: a new Deno
    process replays run() and finds the closures again (nothing is pickled)."""
    (tmp_path / "saga.ts").write_text(
        """
export async function run(event, step, env) {
  const booked = [];
  const undo = { rollback: async (ctx) => `cancelled ${ctx.output} (${booked.length} booked)` };
  booked.push(await step.do("flight", async () => "F1", undo));
  booked.push(await step.do("hotel", async () => "H1", undo));
  await step.sleepUntil("departure", new Date(Date.UTC(2030, 0, 2)));
  return booked;
}
"""
    )
    saga = WorkflowSource.from_directory(tmp_path, main="saga")
    done = WorkflowTestEnv().run_sync(saga)
    assert done.phase == "Complete" and done.output == ["F1", "H1"]
    assert done.elapsed == dt.timedelta(days=1)  # 2030-01-01 → the sleepUntil's day
    stopped = WorkflowTestEnv().run_sync(saga, terminate_after=3600, rollback=True)
    assert stopped.phase == "Terminated"
    assert stopped.step("rollback:hotel")["output"] == "cancelled H1 (2 booked)"
    assert stopped.step("rollback:flight")["output"] == "cancelled F1 (2 booked)"
    assert stopped.advances >= 2  # the rollbacks ran in another Deno process


def test_code_that_asks_and_never_reads_the_replies_is_stopped(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replies Deno leaves unread are capped (a hostile program found the worker
    buffering them without end: ~1 GB before the deadline)."""
    monkeypatch.setattr(typescript, "MAX_UNREAD_BYTES", 1 << 20)
    db.execute("CREATE TABLE big (t TEXT)")
    db.execute("INSERT INTO big VALUES (?)", ("x" * 100_000,))
    fn = ts(
        """
export async function run(event, step, env) {
  for (let i = 0; i < 200; i++) env.db.query("SELECT t FROM big");  // asks, never awaits
  while (true) {}  // and never yields to read the answers
}
"""
    )
    result = advance(fn, db=db, now=lambda: NOW)
    assert isinstance(result.outcome, Errored)
    assert result.outcome.error["name"] == "ProtocolError"
    assert "unread" in result.outcome.error["message"]


def test_a_reply_that_is_not_json_is_an_error_the_code_can_catch(db: Any) -> None:
    """A BLOB read through env.db cannot cross as JSON: the workflow gets a TypeError (the
    advance once waited for ever on a reply it had counted as sent and never sent)."""
    db.execute("CREATE TABLE b (x BLOB)")
    db.execute("INSERT INTO b VALUES (?)", (b"\x00\x01",))
    fn = ts(
        "export async function run(e, step, env) {"
        ' try { await env.db.query("SELECT x FROM b"); return "read"; }'
        " catch (err) { return `${err.name}: ${err.message}`; } }"
    )
    result = advance(fn, db=db, now=lambda: NOW)
    assert isinstance(result.outcome, Complete)
    assert result.outcome.output.startswith("TypeError: not JSON: ")


QUERIES = """
export async function run(event, step, env) {
  const items = event.payload.items;
  const done = [];
  step.query("progress", () => ({ done: done.length, total: items.length }));
  step.query("item", (i) => items[i]);
  step.query("broken", () => { throw new RangeError("no such thing"); });
  step.query("later", async () => 1);
  step.query("fn", () => () => 1);
  for (const item of items) {
    const body = async () => { console.log("ran", item); return item.toUpperCase(); };
    done.push(await step.do(`build-${item}`, body));
    if (item === "b") await step.waitForEvent("go", { type: "go" });
  }
  return done;
}
"""


def test_a_typescript_query_answers_as_of_the_journal_and_runs_nothing() -> None:
    """step.query in TypeScript: the handler lives in Deno and is called there after the
    read-only replay, with the query's arguments; a step body never runs again."""
    fn = ts(QUERIES)
    params = {"items": ["a", "b", "c"]}
    out = advance(fn, params=params, now=lambda: NOW)
    assert isinstance(out.outcome, Waiting)
    assert out.queries == ["broken", "fn", "item", "later", "progress"]
    ran = [line["message"] for line in out.logs if line["message"].startswith("ran")]
    assert ran == ["ran a", "ran b"]

    answer = query(fn, "progress", journal=out.journal, params=params, now=lambda: NOW)
    assert answer.error is None and answer.value == {"done": 2, "total": 3}
    assert query(fn, "item", [2], journal=out.journal, params=params).value == "c"
    first = out.journal[:1]  # an earlier journal: the value as of it
    assert query(fn, "progress", journal=first, params=params).value == {"done": 1, "total": 3}


def test_a_typescript_query_handler_that_throws_or_returns_a_promise_is_an_error() -> None:
    fn = ts(QUERIES)
    params = {"items": ["a", "b", "c"]}
    out = advance(fn, params=params, now=lambda: NOW)
    broken = query(fn, "broken", journal=out.journal, params=params)
    assert broken.error is not None and broken.error["name"] == "QueryFailed"
    assert "query 'broken' raised RangeError: no such thing" in broken.error["message"]
    later = query(fn, "later", journal=out.journal, params=params)
    assert later.error is not None and "not a Promise" in later.error["message"]
    not_json = query(fn, "fn", journal=out.journal, params=params)
    assert (
        not_json.error is not None and "query 'fn' value is not JSON" in not_json.error["message"]
    )
    unknown = query(fn, "nope", journal=out.journal, params=params)
    assert unknown.error is not None and unknown.error["name"] == "UnknownQuery"
    assert unknown.registered == ("broken", "fn", "item", "later", "progress")


def test_a_bad_typescript_query_registration_fails_the_instance() -> None:
    bad_name = ts('export async function run(event, step) { step.query("no spaces", () => 1); }')
    out = advance(bad_name, now=lambda: NOW)
    assert isinstance(out.outcome, Errored)
    assert "query name 'no spaces'" in out.outcome.error["message"]
    not_fn = ts('export async function run(event, step) { step.query("q", 42); }')
    out = advance(not_fn, now=lambda: NOW)
    assert isinstance(out.outcome, Errored)
    assert "step.query('q'): give a function" in out.outcome.error["message"]
