"""Queries (issue 36.7): a handler registered with step.query, answered after a read-only
replay of the journal: nothing new runs, nothing is recorded, env.db refuses writes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tenantflow.engine import advance
from tenantflow.engine.executor import query
from tenantflow.engine.journal import StepState
from tenantflow.engine.outcome import Errored, Waiting
from tenantflow.engine.queries import MAX_RESULT_BYTES, QueryError
from tenantflow.engine.wire import advance_to_wire
from tenantflow.sdk import NonRetryableError
from tenantflow.storage.database import TenantDatabase
from tenantflow.testing import WorkflowTestEnv

pytestmark = pytest.mark.unit
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def progress_workflow(ran: list[str]) -> Any:
    async def wf(event: Any, step: Any, env: Any) -> Any:
        items = event["payload"]["items"]
        done: list[str] = []
        step.query("progress", lambda: {"done": len(done), "total": len(items)})
        step.query("item", lambda i: items[i])
        for item in items:

            def work(item: str = item) -> str:
                ran.append(item)
                return item.upper()

            done.append(await step.do(f"build-{item}", work))
            if item == "b":
                await step.wait_for_event("go", type="go")
        return done

    return wf


def run_until_wait(wf: Any, params: Any) -> Any:
    out = advance(wf, journal=[], params=params, now=lambda: NOW)
    assert isinstance(out.outcome, Waiting)
    return out


def test_a_query_after_a_partial_run_answers_as_of_the_journal_and_runs_nothing() -> None:
    ran: list[str] = []
    wf = progress_workflow(ran)
    params = {"items": ["a", "b", "c"]}
    out = run_until_wait(wf, params)
    assert ran == ["a", "b"]
    assert out.queries == ["item", "progress"]
    assert advance_to_wire(out)["queries"] == ["item", "progress"]
    answer = query(wf, "progress", journal=out.journal, params=params, now=lambda: NOW)
    assert answer.error is None
    assert answer.value == {"done": 2, "total": 3}
    assert ran == ["a", "b"]  # no step body ran again, and "c" never ran
    assert query(wf, "item", [2], journal=out.journal, params=params).value == "c"
    # an earlier journal: the value as of it
    first = out.journal[:1]
    assert query(wf, "progress", journal=first, params=params).value == {"done": 1, "total": 3}
    assert ran == ["a", "b"]


def test_a_query_never_runs_a_step_not_finished_nor_takes_an_event_nor_ends_a_sleep() -> None:
    ran: list[str] = []

    async def wf(event: Any, step: Any, env: Any) -> Any:
        state = {"stage": "start"}
        step.query("stage", lambda: state["stage"])
        await step.sleep("nap", 10)
        state["stage"] = "slept"
        await step.do("flaky", lambda: ran.append("flaky") or 1 / 0, retries={"limit": 3})
        state["stage"] = "done"

    out = advance(wf, journal=[], now=lambda: NOW)
    later = NOW + dt.timedelta(seconds=60)  # the sleep is over by then
    assert query(wf, "stage", journal=out.journal, now=lambda: later).value == "start"
    out = advance(wf, journal=out.journal, now=lambda: later)  # slept; flaky failed once
    assert ran == ["flaky"]
    assert out.journal[1].state is StepState.RETRYING
    much_later = later + dt.timedelta(hours=1)  # its retry is due: a query does not run it
    assert query(wf, "stage", journal=out.journal, now=lambda: much_later).value == "slept"
    assert ran == ["flaky"]


def test_a_finished_instance_keeps_answering_with_its_last_values() -> None:
    async def wf(event: Any, step: Any, env: Any) -> Any:
        total = 0
        step.query("total", lambda: total)
        for i in range(3):
            total += await step.do(f"n{i}", lambda i=i: i + 1)
        return total

    out = advance(wf, journal=[], now=lambda: NOW)
    assert query(wf, "total", journal=out.journal).value == 6


def test_a_handler_that_raises_is_an_error_naming_the_query() -> None:
    async def wf(event: Any, step: Any, env: Any) -> Any:
        step.query("broken", lambda: {}["missing"])
        await step.wait_for_event("go", type="go")

    out = advance(wf, journal=[], now=lambda: NOW)
    answer = query(wf, "broken", journal=out.journal)
    assert answer.value is None and answer.error is not None
    assert answer.error["name"] == "QueryFailed"
    assert "query 'broken' raised KeyError" in answer.error["message"]
    assert "broken" in answer.error.get("traceback", "") or answer.error.get("traceback") is None


def test_an_unknown_query_lists_the_registered_ones() -> None:
    async def wf(event: Any, step: Any, env: Any) -> Any:
        step.query("a", lambda: 1)
        step.query("b", lambda: 2)
        await step.wait_for_event("go", type="go")

    out = advance(wf, journal=[], now=lambda: NOW)
    answer = query(wf, "nope", journal=out.journal)
    assert answer.error is not None and answer.error["name"] == "UnknownQuery"
    assert "registered: a, b" in answer.error["message"]
    assert answer.registered == ("a", "b")


def test_a_handler_cannot_write_env_db(tmp_path: Path) -> None:
    path = tmp_path / "tenant.sqlite3"
    rw = TenantDatabase(path)
    rw.execute("CREATE TABLE t (x)")
    rw.execute("INSERT INTO t VALUES (1)")

    async def wf(event: Any, step: Any, env: Any) -> Any:
        step.query("count", lambda: env.db.query("SELECT count(*) AS n FROM t")[0]["n"])
        step.query("write", lambda: env.db.execute("INSERT INTO t VALUES (2)"))
        step.query("unlock", lambda: env.db.execute("PRAGMA query_only = OFF"))
        await step.wait_for_event("go", type="go")

    out = advance(wf, journal=[], now=lambda: NOW, db=rw)
    ro = TenantDatabase(path, read_only=True)
    try:
        assert query(wf, "count", journal=out.journal, db=ro).value == 1
        for name in ("write", "unlock"):
            answer = query(wf, name, journal=out.journal, db=ro)
            assert answer.error is not None, name
            assert "read-only in a query handler" in answer.error["message"]
        assert query(wf, "count", journal=out.journal, db=ro).value == 1
    finally:
        ro.close()
    assert rw.query("SELECT count(*) AS n FROM t") == [{"n": 1}]
    rw.close()


def test_a_handler_that_starts_a_step_runs_nothing_and_records_nothing() -> None:
    ran: list[str] = []
    tasks: list[Any] = []

    async def wf(event: Any, step: Any, env: Any) -> Any:
        import asyncio

        def sneaky() -> str:
            tasks.append(asyncio.ensure_future(step.do("sneak", lambda: ran.append("sneak"))))
            return "asked"

        step.query("sneaky", sneaky)
        await step.do("one", lambda: ran.append("one") or 1)
        await step.wait_for_event("go", type="go")

    out = advance(wf, journal=[], now=lambda: NOW)
    assert ran == ["one"]
    answer = query(wf, "sneaky", journal=out.journal)
    assert answer.value == "asked"
    assert ran == ["one"]


def test_the_value_is_capped_and_must_be_json() -> None:
    async def wf(event: Any, step: Any, env: Any) -> Any:
        step.query("big", lambda: "x" * (MAX_RESULT_BYTES + 1))
        step.query("odd", lambda: {1, 2})
        step.query("later", lambda: _coroutine())
        await step.wait_for_event("go", type="go")

    async def _coroutine() -> int:
        return 1

    out = advance(wf, journal=[], now=lambda: NOW)
    big = query(wf, "big", journal=out.journal)
    assert big.error is not None and big.error["name"] == "QueryResultTooLarge"
    odd = query(wf, "odd", journal=out.journal)
    assert odd.error is not None and odd.error["name"] == "QueryResultNotJSON"
    later = query(wf, "later", journal=out.journal)
    assert later.error is not None and "not async def" in later.error["message"]


def test_arguments_are_checked() -> None:
    async def wf(event: Any, step: Any, env: Any) -> Any:
        step.query("echo", lambda *a: list(a))

    assert query(wf, "echo", [1, "two"]).value == [1, "two"]
    with pytest.raises(QueryError, match="arguments"):
        query(wf, "echo", [float("nan")])
    with pytest.raises(QueryError, match="at most"):
        query(wf, "echo", list(range(100)))


def test_a_bad_registration_fails_the_instance_on_its_first_run() -> None:
    async def wf(event: Any, step: Any, env: Any) -> Any:
        step.query("has space", lambda: 1)

    out = advance(wf, journal=[], now=lambda: NOW)
    assert isinstance(out.outcome, Errored)
    assert out.outcome.error["name"] == "InvalidStepOptions"


def test_a_diverging_replay_is_the_queries_error() -> None:
    async def first(event: Any, step: Any, env: Any) -> Any:
        await step.do("a", lambda: 1)
        await step.wait_for_event("go", type="go")

    async def second(event: Any, step: Any, env: Any) -> Any:
        step.query("q", lambda: 1)
        await step.do("b", lambda: 1)

    out = advance(first, journal=[], now=lambda: NOW)
    answer = query(second, "q", journal=out.journal)
    assert answer.error is not None and answer.error["name"] == "NonDeterminism"


def test_workflow_test_env_queries_an_instance() -> None:
    env = WorkflowTestEnv()

    async def wf(event: Any, step: Any, env_: Any) -> Any:
        done: list[int] = []
        step.query("progress", lambda: {"done": len(done), "total": 3})
        step.query("item", lambda i: done[i])
        for i in range(3):

            def work(i: int = i) -> int:
                if i == event["payload"]["failAt"]:
                    raise NonRetryableError("no")
                return i * 10

            done.append(await step.do(f"n{i}", work))
        return done

    result = env.run_sync(wf, {"failAt": 2})
    assert result.phase == "Errored"
    assert result.instance_id == "test-instance"
    assert env.query(result, "progress") == {"done": 2, "total": 3}
    assert env.query("test-instance", "item", 1) == 10
    with pytest.raises(QueryError, match="registered: item, progress") as unknown:
        env.query(result, "nope")
    assert unknown.value.reason == "UnknownQuery"
    done = env.run_sync(wf, {"failAt": None}, instance_id="other")
    assert done.phase == "Complete"
    assert env.query("other", "progress") == {"done": 3, "total": 3}
    with pytest.raises(KeyError):
        env.query("never", "progress")
