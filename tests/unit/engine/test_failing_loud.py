"""Wrong workflows get their own clear, fatal errors instead of a guess."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from tenantflow.engine import (
    EngineLimits,
    Errored,
    StepKind,
    StepRecord,
    StepState,
    Yielded,
    advance,
)
from tenantflow.engine.errors import (
    EntrypointMissingError,
    WorkflowImportError,
    WorkflowSignatureError,
    WorkflowSyntaxError,
)
from tenantflow.engine.loader import load
from tenantflow.testing import WorkflowTestEnv

pytestmark = pytest.mark.unit


def run(workflow: Any, **env: Any) -> Any:
    return WorkflowTestEnv(**env).run_sync(workflow)


def test_replay_against_a_different_step_sequence_names_both_steps() -> None:
    async def v2(event: Any, step: Any) -> Any:
        await step.do("deploy", lambda: 1)

    journal = [StepRecord("build", StepKind.DO, StepState.COMPLETE, attempts=1, output=1)]
    result = advance(v2, journal=journal)
    assert result.outcome.error["name"] == "NonDeterminism"  # type: ignore[union-attr]
    message = result.outcome.error["message"]  # type: ignore[union-attr]
    assert "'build'" in message and "'deploy'" in message and "#1" in message


def test_a_kind_change_at_the_same_name_is_non_determinism_too() -> None:
    async def wf(event: Any, step: Any) -> Any:
        await step.sleep("x", "1s")

    journal = [StepRecord("x", StepKind.DO, StepState.COMPLETE, attempts=1, output=1)]
    assert advance(wf, journal=journal).outcome.error["name"] == "NonDeterminism"  # type: ignore[union-attr]


def test_duplicate_step_names_are_rejected_even_if_caught() -> None:
    async def wf(event: Any, step: Any) -> Any:
        await step.do("same", lambda: 1)
        try:
            await step.do("same", lambda: 2)
        except Exception:
            return "swallowed"

    result = run(wf)
    assert result.phase == "Errored"
    assert result.error["name"] == "DuplicateStepName" and "'same'" in result.error["message"]


def test_non_json_output_is_an_error_naming_the_step_and_type() -> None:
    async def wf(event: Any, step: Any) -> Any:
        await step.do("obj", lambda: object())

    result = run(wf)
    assert result.error["name"] == "InvalidOutput"
    assert "'obj'" in result.error["message"] and "object" in result.error["message"]


def test_large_outputs_are_offloaded_and_read_back() -> None:
    big = "x" * 20_000

    async def wf(event: Any, step: Any) -> Any:
        value = await step.do("big", lambda: big)
        await step.sleep("s", "1s")  # replay must read it back from the store
        return len(value)

    result = run(wf)
    assert result.output == 20_000
    assert "outputRef" in result.step("big") and "output" not in result.step("big")


def test_large_outputs_without_a_store_fail_with_the_cap_in_the_message() -> None:
    async def wf(event: Any, step: Any) -> Any:
        await step.do("big", lambda: "x" * 20_000)

    outcome = advance(wf).outcome
    assert outcome.error["name"] == "InvalidOutput"  # type: ignore[union-attr]
    assert "16384-byte inline cap" in outcome.error["message"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("source", "error", "fragment"),
    [
        ("async def run(event, step, env)\n    pass", WorkflowSyntaxError, "line 1"),
        ("async def main(event, step, env): pass", EntrypointMissingError, "main"),
        ("def run(event, step, env): pass", WorkflowSignatureError, "async"),
        ("async def run(event): pass", WorkflowSignatureError, "1 positional"),
        ("import not_a_module_xyz\nasync def run(e, s): pass", WorkflowImportError, "xyz"),
    ],
)
def test_bad_sources_are_rejected_with_a_reason(source: str, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        load(source)
    result = run(source)
    assert result.phase == "Errored" and result.error["name"] == error.reason  # type: ignore[attr-defined]


def test_awaiting_something_that_is_not_a_step_is_invalid() -> None:
    async def wf(event: Any, step: Any) -> Any:
        await asyncio.sleep(3600)

    result = run(wf)
    assert result.error["name"] == "InvalidAwait" and "step.sleep" in result.error["message"]


def test_the_tenant_step_limit_is_enforced() -> None:
    async def wf(event: Any, step: Any) -> Any:
        for i in range(10):
            await step.do(f"s{i}", lambda: 1)

    result = run(wf, limits=EngineLimits(max_steps=5))
    assert result.error["name"] == "StepLimitExceeded"
    assert "maxStepsPerInstance=5" in result.error["message"]
    assert len(result.steps) == 5


def test_a_step_timeout_over_the_tenant_cap_is_refused() -> None:
    async def wf(event: Any, step: Any) -> Any:
        await step.do("long", lambda: 1, timeout="2h")

    result = run(wf)
    assert result.error["name"] == "InvalidStepOptions"
    assert "maxStepTimeoutSeconds" in result.error["message"]


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        ("step.do('a', lambda: 1, retries={'limit': -1})", "limit"),
        ("step.do('a', lambda: 1, retries={'backoff': 'random'})", "backoff"),
        ("step.do('a', lambda: 1, retries={'tries': 3})", "unknown key"),
        ("step.do('a', 42)", "callable"),
        ("step.sleep('a', 'soon')", "not a duration"),
        ("step.sleep_until('a', 'tomorrow')", "RFC 3339"),
        ("step.wait_for_event('a', type='')", "non-empty"),
        ("step.do('', lambda: 1)", "non-empty"),
    ],
)
def test_bad_step_options_name_the_problem(call: str, fragment: str) -> None:
    source = f"async def run(event, step):\n    await {call}\n"
    result = run(source)
    assert result.error["name"] == "InvalidStepOptions"
    assert fragment in result.error["message"]


def test_batches_yield_so_the_operator_can_commit() -> None:
    async def wf(event: Any, step: Any) -> Any:
        return sum([await step.do(f"s{i}", lambda i=i: i) for i in range(7)])

    limits = EngineLimits(batch_steps=3)
    first = advance(wf, limits=limits)
    assert isinstance(first.outcome, Yielded) and len(first.journal) == 3
    result = run(wf, limits=limits)
    assert result.output == 21 and result.advances == 3


def test_a_step_interrupted_before_persisting_runs_again() -> None:
    """A Running record (interrupted attempt) re-executes: at-least-once."""
    calls: list[int] = []

    async def wf(event: Any, step: Any) -> Any:
        return await step.do("charge", lambda: calls.append(1) or "charged")

    journal = [StepRecord("charge", StepKind.DO, StepState.RUNNING)]
    result = advance(wf, journal=journal)
    assert result.outcome.output == "charged" and calls == [1]  # type: ignore[union-attr]
    assert journal[0].state is StepState.RUNNING, "the input journal must not be modified"


def test_the_definition_default_timeout_is_clamped_to_the_tenant_cap() -> None:
    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    async def wf(event: Any, step: Any) -> Any:
        await step.do("slow", slow, retries={"limit": 0})

    result = run(wf, limits=EngineLimits(max_step_timeout=0.05))
    assert result.error["name"] == "StepTimeout", "the default 10m became the 50ms cap"


def test_a_fatal_error_leaves_no_unread_task_exception(caplog: pytest.LogCaptureFixture) -> None:
    """run()'s own exception after a fatal step error is read, so asyncio does not print
    "Task exception was never retrieved" (in a sandbox: into the tenant's output lines)."""

    async def wf(event: Any, step: Any, env: Any) -> Any:
        await step.do("x", lambda: 1, retries="bad")

    result = advance(wf)
    gc.collect()
    assert isinstance(result.outcome, Errored)
    assert "never retrieved" not in caplog.text
