"""Compensation (issue 43): rollbacks declared with the step, run newest first as journal
entries of their own when an instance fails or is terminated with rollback; found again
by replaying run(), never by pickling; each at most once once recorded."""

from __future__ import annotations

import asyncio
import datetime as dt
import textwrap
from typing import Any

import pytest

from tenantflow.engine import advance
from tenantflow.engine.compensation import changes, marker
from tenantflow.engine.journal import StepRecord, dump, load
from tenantflow.engine.outcome import Compensating, Errored, RollbackFailed, RolledBack
from tenantflow.engine.wire import outcome_from_wire, outcome_to_wire
from tenantflow.lifecycle import instance_state as state
from tenantflow.lifecycle.reset import ResetRequest, reset
from tenantflow.sdk import NonRetryableError, RollbackContext
from tenantflow.testing import WorkflowTestEnv
from tenantflow.vocabulary import Phase

pytestmark = pytest.mark.unit
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def names(result: Any) -> list[str]:
    return [s["name"] for s in result.steps]


def saga(undone: list[tuple[str, Any, str]], fail_at: str | None = "ship") -> Any:
    async def wf(event: Any, step: Any, env: Any) -> Any:
        def undo(ctx: RollbackContext) -> str:
            undone.append((ctx.step, ctx.output, ctx.error["name"]))
            return f"undid {ctx.step}"

        def work(name: str) -> Any:
            def fn() -> Any:
                if name == fail_at:
                    raise NonRetryableError(f"{name} failed")
                return {name: True}

            return fn

        for name in ("reserve", "charge", "ship"):
            await step.do(name, work(name), rollback=undo)
        return "done"

    return wf


def test_a_failed_saga_rolls_back_what_completed_newest_first() -> None:
    undone: list[tuple[str, Any, str]] = []
    result = WorkflowTestEnv().run_sync(saga(undone))
    assert result.phase == "Errored"
    assert result.error["name"] == "NonRetryableError" and result.error["step"] == "ship"
    assert undone == [
        ("charge", {"charge": True}, "NonRetryableError"),
        ("reserve", {"reserve": True}, "NonRetryableError"),
    ]
    assert names(result) == [
        "reserve",
        "charge",
        "ship",
        "compensation",
        "rollback:charge",
        "rollback:reserve",
    ]
    mark = result.step("compensation")
    assert mark["kind"] == "compensate" and mark["state"] == "Complete"
    assert mark["error"]["step"] == "ship"  # what triggered it
    assert result.step("rollback:charge")["output"] == "undid charge"
    assert [result.step(n).get("rollback") for n in ("reserve", "charge", "ship")] == [1, 2, None]


def test_a_saga_that_completes_rolls_nothing_back() -> None:
    undone: list[tuple[str, Any, str]] = []
    result = WorkflowTestEnv().run_sync(saga(undone, fail_at=None))
    assert result.phase == "Complete" and undone == []
    assert names(result) == ["reserve", "charge", "ship"]


def test_an_error_without_rollbacks_is_errored_as_before() -> None:
    async def wf(event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1)
        raise ValueError("between steps")

    result = WorkflowTestEnv().run_sync(wf)
    assert result.phase == "Errored" and names(result) == ["a"]


def test_an_exception_in_run_between_steps_triggers_the_rollbacks() -> None:
    undone: list[str] = []

    async def wf(event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1, rollback=lambda ctx: undone.append(ctx.step))
        raise ValueError("between steps")

    result = WorkflowTestEnv().run_sync(wf)
    assert result.phase == "Errored" and result.error["name"] == "ValueError"
    assert undone == ["a"]


def test_gathered_steps_are_rolled_back_in_reverse_order_of_completion() -> None:
    undone: list[str] = []

    async def slow() -> str:
        await asyncio.sleep(0.05)
        return "slow"

    async def fast() -> str:
        return "fast"

    async def wf(event: Any, step: Any) -> Any:
        def undo(ctx: RollbackContext) -> None:
            undone.append(ctx.step)

        # called slow first, completes last
        await asyncio.gather(
            step.do("slow", slow, rollback=undo), step.do("fast", fast, rollback=undo)
        )
        await step.do("boom", _boom)

    result = WorkflowTestEnv().run_sync(wf)
    assert names(result)[:2] == ["slow", "fast"]  # the journal is in call order
    assert undone == ["slow", "fast"]  # rollbacks: newest completion first
    assert result.step("fast")["rollback"] < result.step("slow")["rollback"]


def _boom() -> None:
    raise NonRetryableError("boom")


def test_a_step_still_running_beside_the_failure_is_never_rolled_back() -> None:
    undone: list[str] = []

    async def wf(event: Any, step: Any) -> Any:
        undo = lambda ctx: undone.append(ctx.step)  # noqa: E731
        await step.do("done", lambda: 1, rollback=undo)

        def flaky() -> None:
            raise RuntimeError("not yet")

        await asyncio.gather(
            step.do("fails", _boom),
            step.do("retrying", flaky, rollback=undo, retries={"limit": 5, "delay": "1h"}),
        )

    result = WorkflowTestEnv().run_sync(wf)
    assert result.phase == "Errored"
    assert undone == ["done"]
    assert result.step("retrying")["state"] != "Complete"
    assert "rollback:retrying" not in names(result)


def test_a_rollback_that_fails_once_is_retried_by_its_own_policy() -> None:
    tries: list[int] = []

    async def wf(event: Any, step: Any) -> Any:
        def undo(ctx: RollbackContext) -> str:
            tries.append(ctx.attempt)
            if ctx.attempt == 1:
                raise RuntimeError("refund service down")
            return "refunded"

        await step.do(
            "charge",
            lambda: 42,
            rollback=undo,
            rollback_retries={"limit": 3, "delay": "30s", "backoff": "constant"},
        )
        await step.do("ship", _boom)

    result = WorkflowTestEnv().run_sync(wf)
    assert result.phase == "Errored" and tries == [1, 2]
    rb = result.step("rollback:charge")
    assert rb["state"] == "Complete" and rb["attempts"] == 2
    assert rb["failures"][0]["message"] == "refund service down"
    assert result.elapsed == dt.timedelta(seconds=30)  # the retry waited on the clock


def test_a_rollback_that_always_fails_stops_the_chain_rollback_failed() -> None:
    undone: list[str] = []

    async def wf(event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1, rollback=lambda ctx: undone.append(ctx.step))

        def never(ctx: RollbackContext) -> None:
            raise RuntimeError("cannot refund")

        await step.do("b", lambda: 2, rollback=never, rollback_retries={"limit": 1, "delay": 1})
        await step.do("c", _boom)

    result = WorkflowTestEnv().run_sync(wf)
    assert result.phase == "RollbackFailed"
    assert result.error == {
        "name": "RuntimeError",
        "message": "cannot refund",
        "step": "rollback:b",
    }
    assert undone == []  # the chain stopped: a's rollback did not run
    assert result.step("rollback:b")["attempts"] == 2
    assert result.step("compensation")["state"] == "Errored"


def test_retry_of_rollback_failed_resumes_the_chain_without_running_forward() -> None:
    calls: list[str] = []
    fixed = {"ok": False}

    async def wf(event: Any, step: Any) -> Any:
        def undo(ctx: RollbackContext) -> None:
            calls.append(f"undo {ctx.step}")
            if ctx.step == "b" and not fixed["ok"]:
                raise NonRetryableError("down")

        await step.do("a", lambda: calls.append("a"), rollback=undo)
        await step.do("b", lambda: calls.append("b"), rollback=undo)
        await step.do("c", _boom)

    journal = advance(wf, now=lambda: NOW).journal
    assert [r.name for r in journal][-1] == "rollback:b"
    status = {"phase": Phase.ROLLBACK_FAILED, "revision": 1, "steps": dump(journal)}
    done = reset(status, ResetRequest("r1", None, by="bob"), terminating=False, now=NOW)
    assert done.event[1] == "Reset" and done.update["phase"] == Phase.COMPENSATING
    assert [s["name"] for s in done.update["steps"]][-1] == "compensation"
    assert done.update["steps"][-1]["state"] == "Running"
    fixed["ok"] = True
    calls.clear()
    out = advance(wf, journal=load(done.update["steps"]), now=lambda: NOW)
    assert isinstance(out.outcome, RolledBack)
    assert calls == ["undo b", "undo a"]  # nothing forward ran again
    assert [r.name for r in out.journal][-2:] == ["rollback:b", "rollback:a"]


def test_replays_never_run_a_recorded_rollback_again() -> None:
    calls: list[str] = []

    async def wf(event: Any, step: Any) -> Any:
        undo = lambda ctx: calls.append(ctx.step)  # noqa: E731
        await step.do("a", lambda: 1, rollback=undo)
        await step.do("b", lambda: 2, rollback=undo)
        await step.do("c", _boom)

    first = advance(wf, now=lambda: NOW)
    assert isinstance(first.outcome, RolledBack) and calls == ["b", "a"]
    for _ in range(3):  # the same journal, replayed: nothing runs again
        again = advance(wf, journal=first.journal, now=lambda: NOW)
        assert isinstance(again.outcome, RolledBack) and not again.changed
    assert calls == ["b", "a"]


def test_a_rollback_interrupted_before_its_result_was_recorded_runs_again() -> None:
    calls: list[str] = []

    async def wf(event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1, rollback=lambda ctx: calls.append(ctx.step))
        await step.do("c", _boom)

    done = advance(wf, now=lambda: NOW).journal
    crashed = [*done[:-1], StepRecord("rollback:a", done[-1].kind, done[-1].state.RUNNING)]
    crashed[-2].state = crashed[-2].state.RUNNING  # the marker, under way
    calls.clear()
    out = advance(wf, journal=crashed, now=lambda: NOW)
    assert isinstance(out.outcome, RolledBack) and calls == ["a"]


SOURCE = textwrap.dedent(
    """
    from tenantflow.sdk import NonRetryableError

    async def run(event, step, env):
        order = event["payload"]
        refund = lambda ctx: "refunded " + ctx.output["id"] + " " + order["id"]
        await step.do("charge", lambda: {"id": "ch-" + order["id"]}, rollback=refund)
        def fail():
            raise NonRetryableError("no address")
        await step.do("ship", fail)
    """
)


def test_a_closure_rollback_is_found_again_by_replaying_a_fresh_import() -> None:
    """Each advance in the sandbox is a fresh process importing the source again: the
    lambda closing over `order` is declared again by the replay, never stored."""
    env = WorkflowTestEnv()
    result = env.run_sync(SOURCE, {"id": "7"})
    assert result.phase == "Errored"
    assert result.step("rollback:charge")["output"] == "refunded ch-7 7"
    # the compensation alone, from the journal after the failure, in another module load
    journal = load([s for s in result.steps if not s["name"].startswith("rollback:")])
    journal[-1].state = journal[-1].state.RUNNING
    journal[-1].finished_at = None
    again = WorkflowTestEnv()
    rerun = again._run_of(SOURCE, {"id": "7"}, "i")
    rerun.journal = journal
    again._advance(rerun, {"i": rerun})
    assert rerun.result.phase == "Errored"
    assert rerun.result.step("rollback:charge")["output"] == "refunded ch-7 7"


def test_a_terminate_with_rollback_while_sleeping_undoes_what_completed() -> None:
    undone: list[str] = []

    async def wf(event: Any, step: Any) -> Any:
        undo = lambda ctx: undone.append(f"{ctx.step}:{ctx.error['name']}")  # noqa: E731
        await step.do("a", lambda: 1, rollback=undo)
        await step.do("b", lambda: 2, rollback=undo)
        await step.sleep("nap", "1h")
        await step.do("c", lambda: 3, rollback=undo)

    result = WorkflowTestEnv().run_sync(wf, terminate_after=60, rollback=True)
    assert result.phase == "Terminated"
    assert undone == ["b:Terminated", "a:Terminated"]
    assert result.step("nap")["state"] == "Waiting"  # it never woke: nothing new ran
    assert "c" not in names(result)

    plain = WorkflowTestEnv().run_sync(wf, terminate_after=60)
    assert plain.phase == "Terminated" and "compensation" not in names(plain)


def test_the_operator_begins_a_compensation_with_the_journals_marker() -> None:
    async def wf(event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1, rollback=lambda ctx: ctx.error["message"])
        await step.sleep("nap", "1h")

    first = advance(wf, now=lambda: NOW)
    status = {"phase": Phase.WAITING, "steps": dump(first.journal)}
    begun = state.begin_compensation(status, state.termination("bob"), NOW)
    assert begun is not None and begun["phase"] == Phase.COMPENSATING
    assert state.begin_compensation({**status, **begun}, {}, NOW) is None  # once
    assert state.begin_compensation({"steps": []}, {}, NOW) is None  # nothing owed
    out = advance(wf, journal=load(begun["steps"]), now=lambda: NOW + dt.timedelta(hours=2))
    assert isinstance(out.outcome, RolledBack)
    assert out.journal[-1].output == "terminated with rollback by bob"
    update = state.after_advance(
        {"journal": dump(out.journal)}, out.outcome, seen=[], now=NOW, terminating=True
    )
    assert update["phase"] == Phase.TERMINATED
    errored = state.after_advance({"journal": []}, out.outcome, seen=[], now=NOW)
    assert errored["phase"] == Phase.ERRORED


def test_outcomes_cross_the_wire_and_map_to_phases() -> None:
    for outcome in (
        Compensating(NOW, {"kind": "retry", "step": "rollback:a", "until": "x"}),
        Compensating(None, None),
        RolledBack({"name": "E", "message": "m"}),
        RollbackFailed({"name": "E", "message": "m", "step": "rollback:a"}, {"name": "T"}),
    ):
        assert outcome_from_wire(outcome_to_wire(outcome)) == outcome
    waiting = state.after_advance(
        {"journal": []},
        Compensating(NOW, {"kind": "retry", "step": "rollback:a"}),
        seen=[],
        now=NOW,
    )
    assert waiting["phase"] == Phase.COMPENSATING and waiting["nextWakeAt"]
    status = {"phase": Phase.COMPENSATING, "nextWakeAt": waiting["nextWakeAt"]}
    assert not state.needs_advance(status, [], NOW - dt.timedelta(seconds=1))
    assert state.needs_advance(status, [], NOW)
    failed = state.after_advance(
        {"journal": []},
        RollbackFailed({"name": "E", "message": "m", "step": "rollback:a"}, {}),
        seen=[],
        now=NOW,
    )
    assert failed["phase"] == Phase.ROLLBACK_FAILED and failed["error"]["step"] == "rollback:a"
    assert isinstance(Errored({}), Errored)


def test_rollback_metrics_count_started_succeeded_failed() -> None:
    before = [{"name": "rollback:a", "kind": "rollback", "state": "Retrying"}]
    after = [
        {"name": "rollback:a", "kind": "rollback", "state": "Complete"},
        {"name": "rollback:b", "kind": "rollback", "state": "Errored"},
    ]
    assert changes(before, after) == (1, 1, 1)
    assert marker({"name": "T"}, NOW)["kind"] == "compensate"


def test_rollback_options_are_checked_on_the_first_run() -> None:
    async def bad(event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1, rollback="not callable")

    async def orphan(event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1, rollback_retries={"limit": 1})

    async def reserved(event: Any, step: Any) -> Any:
        await step.do("rollback:a", lambda: 1)

    for wf in (bad, orphan, reserved):
        result = WorkflowTestEnv().run_sync(wf)
        assert result.phase == "Errored" and result.error["name"] == "InvalidStepOptions"
