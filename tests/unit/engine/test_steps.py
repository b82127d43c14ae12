"""step.do, sleep and wait_for_event semantics through WorkflowTestEnv (the real engine)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from tenantflow.durations import parse_time
from tenantflow.engine import RetryPolicy, StepDefaults
from tenantflow.engine.env import MAX_LOG_LINE_BYTES, MAX_LOG_LINES
from tenantflow.sdk import NonRetryableError, StepError, WaitTimeout, current_attempt
from tenantflow.testing import WorkflowTestEnv

pytestmark = pytest.mark.unit


def run(workflow: Any, params: Any = None, events: Any = (), **env: Any) -> Any:
    return WorkflowTestEnv(**env).run_sync(workflow, params, events)


def gap(result: Any, a: str, b: str) -> float:
    """Seconds between two timestamps in the result's steps, e.g. retries' finish times."""
    return (parse_time(b) - parse_time(a)).total_seconds()


def test_completed_steps_never_run_again_across_wakeups() -> None:
    calls: list[str] = []

    async def wf(event: Any, step: Any, env: Any) -> Any:
        a = await step.do("a", lambda: calls.append("a") or 1)
        await step.sleep("nap", "1h")
        b = await step.do("b", lambda: calls.append("b") or 2)
        await step.sleep("nap2", "1h")
        return a + b

    result = run(wf)
    assert result.phase == "Complete" and result.output == 3
    assert calls == ["a", "b"]
    assert result.advances == 3  # start, after nap, after nap2: each a full replay


def test_sync_async_and_awaitable_returning_callables() -> None:
    async def fetch() -> str:
        await asyncio.sleep(0)
        return "async"

    async def wf(event: Any, step: Any) -> Any:  # (event, step) only is allowed
        return [
            await step.do("sync", lambda: "sync"),
            await step.do("async", fetch),
            await step.do("lambda-coro", lambda: fetch()),
        ]

    assert run(wf).output == ["sync", "async", "async"]


@pytest.mark.parametrize(
    ("backoff", "gaps"),
    [("constant", [2, 2, 2]), ("linear", [2, 4, 6]), ("exponential", [2, 4, 8])],
)
def test_retry_backoff_shapes(backoff: str, gaps: list[float]) -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(current_attempt())
        if current_attempt() <= 3:
            raise RuntimeError(f"fail {current_attempt()}")
        return "ok"

    async def wf(event: Any, step: Any) -> Any:
        return await step.do("s", flaky, retries={"limit": 3, "delay": "2s", "backoff": backoff})

    result = run(wf)
    assert result.output == "ok"
    assert attempts == [1, 2, 3, 4]
    assert result.step("s")["attempts"] == 4
    assert result.elapsed == dt.timedelta(seconds=sum(gaps))


def test_max_delay_caps_exponential_backoff() -> None:
    policy = RetryPolicy(limit=10, delay=1, backoff="exponential", max_delay=5)
    assert [policy.delay_for(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_retries_exhausted_errors_the_instance_with_the_step_error() -> None:
    def boom() -> None:
        raise ValueError("bad input")

    async def wf(event: Any, step: Any) -> Any:
        await step.do("parse", boom, retries={"limit": 2, "delay": "1s"})

    result = run(wf)
    assert result.phase == "Errored"
    assert result.error == {"name": "ValueError", "message": "bad input", "step": "parse"}
    assert result.step("parse")["state"] == "Errored"
    assert result.step("parse")["attempts"] == 3


def test_non_retryable_error_fails_at_once_and_is_catchable() -> None:
    async def wf(event: Any, step: Any) -> Any:
        def refuse() -> None:
            raise NonRetryableError("card declined")

        try:
            await step.do("charge", refuse, retries={"limit": 5, "delay": "1s"})
        except StepError as err:
            return {"caught": err.error_name, "msg": err.error_message, "n": err.attempts}

    result = run(wf)
    assert result.output == {"caught": "NonRetryableError", "msg": "card declined", "n": 1}
    assert result.elapsed == dt.timedelta(0)


def test_a_caught_step_failure_is_handled_the_same_on_replay() -> None:
    async def wf(event: Any, step: Any) -> Any:
        try:
            await step.do("bad", lambda: 1 / 0, retries={"limit": 0})
        except StepError:
            handled = "fallback"
        await step.sleep("later", "1m")  # forces a second advance: `bad` is replayed
        return handled

    result = run(wf)
    assert result.output == "fallback" and result.advances == 2


def test_attempt_timeout_cancels_and_counts_the_attempt() -> None:
    async def slow() -> str:
        if current_attempt() == 1:
            await asyncio.sleep(5)
        return "fast enough"

    async def wf(event: Any, step: Any) -> Any:
        return await step.do("slow", slow, timeout=0.05, retries={"limit": 1, "delay": 0})

    result = run(wf)
    assert result.output == "fast enough"
    assert result.step("slow")["attempts"] == 2


def test_attempt_timeout_error_is_named_step_timeout() -> None:
    async def wf(event: Any, step: Any) -> Any:
        await step.do("hang", lambda: asyncio.sleep(5), timeout="50ms", retries={"limit": 0})

    result = run(wf)
    assert result.error is not None
    assert result.error["name"] == "StepTimeout" and "50ms" in result.error["message"]


def test_defaults_come_from_the_definition() -> None:
    defaults = StepDefaults(retries=RetryPolicy(limit=1, delay=7, backoff="constant"))

    async def wf(event: Any, step: Any) -> Any:
        await step.do("x", lambda: 1 / 0)

    result = run(wf, defaults=defaults)
    assert result.step("x")["attempts"] == 2
    assert result.elapsed == dt.timedelta(seconds=7)


def test_a_thirty_day_sleep_is_virtual() -> None:
    async def wf(event: Any, step: Any) -> Any:
        await step.sleep("month", "30d")
        await step.sleep_until("new-year", "2031-01-01T00:00:00Z")
        return "done"

    result = run(wf)
    assert result.output == "done"
    assert result.elapsed == parse_time("2031-01-01T00:00:00Z") - parse_time("2030-01-01T00:00Z")
    assert result.step("month")["until"] == "2030-01-31T00:00:00Z"


def test_events_are_buffered_and_consumed_in_arrival_order() -> None:
    async def wf(event: Any, step: Any) -> Any:
        await step.sleep("busy", "1h")  # both events arrive while we sleep
        first = await step.wait_for_event("first", type="vote")
        second = await step.wait_for_event("second", type="vote")
        return [first["payload"], second["payload"], first["type"]]

    events = [(60, "vote", "yes"), (120, "vote", "no"), (90, "other", None)]
    assert run(wf, events=events).output == ["yes", "no", "vote"]


def test_wait_returns_the_event_with_its_arrival_timestamp() -> None:
    async def wf(event: Any, step: Any) -> Any:
        return await step.wait_for_event("approval", type="approved", timeout="1d")

    result = run(wf, events=[(3600, "approved", {"by": "bob"})])
    assert result.output == {
        "type": "approved",
        "payload": {"by": "bob"},
        "timestamp": "2030-01-01T01:00:00Z",
    }


def test_wait_timeout_is_catchable() -> None:
    async def wf(event: Any, step: Any) -> Any:
        try:
            await step.wait_for_event("approval", type="approved", timeout="2h")
        except WaitTimeout as err:
            return f"timed out: {err.event_type}"

    result = run(wf)
    assert result.output == "timed out: approved"
    assert result.elapsed == dt.timedelta(hours=2)
    assert result.step("approval")["error"]["name"] == "WaitTimeout"


def test_uncaught_wait_timeout_errors_the_instance() -> None:
    async def wf(event: Any, step: Any) -> Any:
        await step.wait_for_event("approval", type="approved", timeout="1h")

    result = run(wf)
    assert result.phase == "Errored"
    assert result.error is not None
    assert (result.error["name"], result.error["step"]) == ("WaitTimeout", "approval")


def test_an_event_after_the_timeout_is_too_late() -> None:
    async def wf(event: Any, step: Any) -> Any:
        await step.wait_for_event("approval", type="approved", timeout="1h")

    assert run(wf, events=[(7200, "approved", {})]).phase == "Errored"


def test_parallel_steps_have_a_deterministic_journal() -> None:
    async def work(n: int) -> int:
        await asyncio.sleep(0.001 * (5 - n))  # finish in reverse order
        return n

    async def wf(event: Any, step: Any) -> Any:
        results = await asyncio.gather(*(step.do(f"w{n}", lambda n=n: work(n)) for n in range(5)))
        await step.sleep("s", "1s")
        return results

    result = run(wf)
    assert result.output == [0, 1, 2, 3, 4]
    assert [s["name"] for s in result.steps] == ["w0", "w1", "w2", "w3", "w4", "s"]


def test_gather_of_a_sleep_and_an_event_wakes_for_either() -> None:
    async def wf(event: Any, step: Any) -> Any:
        got, _ = await asyncio.gather(
            step.wait_for_event("ev", type="go", timeout="1d"), step.sleep("nap", "2h")
        )
        return got["payload"]

    result = run(wf, events=[(3600, "go", 42)])
    assert result.output == 42 and result.elapsed == dt.timedelta(hours=2)


def test_event_and_params_and_env_reach_the_workflow() -> None:
    async def wf(event: Any, step: Any, env: Any) -> Any:
        env.db.execute("CREATE TABLE t (v TEXT)")
        env.db.execute("INSERT INTO t VALUES (?)", (event["payload"]["v"],))
        env.log.info("stored", value=event["payload"]["v"])
        rows = await step.do("read", lambda: env.db.query("SELECT v FROM t"))
        return {
            "rows": rows,
            "id": event["instanceId"],
            "tenant": env.tenant,
            "ts": event["timestamp"],
        }

    result = run(wf, params={"v": "hello"}, tenant="acme")
    assert result.output == {
        "rows": [{"v": "hello"}],
        "id": "test-instance",
        "tenant": "acme",
        "ts": "2030-01-01T00:00:00Z",
    }
    assert result.logs[0]["message"] == "stored" and result.logs[0]["fields"] == {"value": "hello"}


def test_logs_are_not_repeated_by_replays() -> None:
    async def wf(event: Any, step: Any, env: Any) -> Any:
        env.log.info("start")
        await step.sleep("a", "1m")
        env.log.info("middle")
        await step.sleep("b", "1m")
        env.log.info("end")

    assert [line["message"] for line in run(wf).logs] == ["start", "middle", "end"]


def test_log_fields_stay_namespaced_capped_and_json() -> None:
    async def wf(event: Any, step: Any, env: Any) -> None:
        env.log.info("forged", tenant="other", level="critical", logger="operator")
        for n in range(MAX_LOG_LINES + 50):
            env.log.info("x", n=n)
        env.log.info("y" * (MAX_LOG_LINE_BYTES + 1))

    logs = run(wf).logs
    assert logs[0]["level"] == "info" and logs[0]["fields"] == {
        "tenant": "other",
        "level": "critical",
        "logger": "operator",
    }
    assert len(logs) == MAX_LOG_LINES

    async def bad(event: Any, step: Any, env: Any) -> None:
        env.log.info("a set", v={1, 2})

    result = run(bad)
    assert result.phase == "Errored" and result.error["name"] == "TypeError"
    assert "env.log.info" in result.error["message"]


def test_a_steps_failed_attempts_stay_in_its_record_after_it_succeeds() -> None:
    from tenantflow.engine.journal import FAILURES_KEPT

    def flaky() -> str:
        if current_attempt() <= 4:
            raise ValueError(f"down (attempt {current_attempt()})")
        return "up"

    async def wf(event: Any, step: Any) -> Any:
        return await step.do("flaky", flaky, retries={"limit": 5, "delay": 0})

    result = run(wf)
    entry = result.step("flaky")
    assert result.output == "up" and "error" not in entry and entry["attempts"] == 5
    assert [f["attempt"] for f in entry["failures"]] == [2, 3, 4][-FAILURES_KEPT:]
    assert entry["failures"][-1]["message"] == "down (attempt 4)"


def test_a_line_logged_inside_a_step_names_the_step_and_its_attempt() -> None:
    async def wf(event: Any, step: Any, env: Any) -> None:
        env.log.info("before")

        def flaky() -> str:
            env.log.info("trying")
            if current_attempt() < 2:
                raise RuntimeError("once")
            return "ok"

        await step.do("fetch", flaky, retries={"limit": 2, "delay": "0s"})
        env.log.info("after")

    logs = run(wf).logs
    where = [(line["message"], line.get("step"), line.get("attempt")) for line in logs]
    assert where == [
        ("before", None, None),
        ("trying", "fetch", 1),
        ("trying", "fetch", 2),
        ("after", None, None),
    ]


def test_what_tenant_code_prints_is_its_steps_output_once() -> None:
    """Issue 34.1: print() and sys.stderr are lines of the step that wrote them (by the
    writing task's context, so parallel steps keep theirs), silent while replaying."""
    import sys

    async def wf(event: Any, step: Any) -> None:
        print("starting")

        def build(name: str) -> str:
            print(f"compiling {name}", "ok")
            print("warning: slow", file=sys.stderr)
            return name

        await asyncio.gather(step.do("a", lambda: build("a")), step.do("b", lambda: build("b")))
        await step.sleep("nap", "1m")
        print("done", end="")  # no newline: still a line at the end

    lines = [(g["level"], g["message"], g.get("step")) for g in run(wf).logs]
    assert lines == [
        ("stdout", "starting", None),
        ("stdout", "compiling a ok", "a"),
        ("stderr", "warning: slow", "a"),
        ("stdout", "compiling b ok", "b"),
        ("stderr", "warning: slow", "b"),
        ("stdout", "done", None),
    ]


def test_a_flood_of_output_is_capped_with_one_marker() -> None:
    from tenantflow.engine.env import MAX_OUTPUT_LINES

    async def wf(event: Any, step: Any, env: Any) -> None:
        for n in range(MAX_OUTPUT_LINES + 5):
            print(n)
        env.log.info("still logged")

    logs = run(wf).logs
    printed = [g for g in logs if g["level"] == "stdout"]
    assert len(printed) == MAX_OUTPUT_LINES and printed[-1]["message"] == str(MAX_OUTPUT_LINES - 1)
    assert [g["message"] for g in logs if g["level"] == "info"] == ["still logged"]
    assert logs[-1]["message"] == "[tenantflow] 5 more lines of output in this advance were dropped"
