"""Search attributes set from workflow code (issue 34.3): `step.set_attributes` collects
declared names during an advance (the last call wins, None removes), the same on every
replay, and the advance's result carries them; an undeclared name is a clear, fatal
error; a query's replay sets nothing."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import pytest

from tenantflow.engine import advance
from tenantflow.engine.attributes import MAX_LABEL_VALUE, fit
from tenantflow.engine.executor import query
from tenantflow.engine.outcome import Complete, Errored, Waiting
from tenantflow.engine.wire import advance_to_wire
from tenantflow.testing import WorkflowSource, WorkflowTestEnv

pytestmark = pytest.mark.unit
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
DECLARED = frozenset({"status", "coverage", "git-branch"})


async def ci(event: Any, step: Any, env: Any) -> str:
    await step.set_attributes(status="building", coverage=None)
    await step.do("build", lambda: "built")
    await step.set_attributes({"git-branch": "feature/x"}, status="tests passed!", coverage=81.5)
    await step.sleep("cool-down", "1h")
    await step.set_attributes(status="done", coverage=None)
    return "ok"


def test_set_overwrite_and_remove_within_an_advance() -> None:
    first = advance(ci, now=lambda: NOW, declared_attributes=DECLARED)
    assert isinstance(first.outcome, Waiting)
    # the last call for a name wins; values fitted as labels are
    assert first.attributes == {
        "status": "tests-passed",
        "coverage": "81.5",
        "git-branch": "feature-x",
    }
    assert advance_to_wire(first)["attributes"] == first.attributes
    later = advance(
        ci,
        journal=first.journal,
        now=lambda: NOW + dt.timedelta(hours=2),
        declared_attributes=DECLARED,
    )
    assert isinstance(later.outcome, Complete)
    assert later.attributes == {"status": "done", "coverage": None, "git-branch": "feature-x"}


def test_a_replay_sets_the_same_attributes_without_changing_the_journal() -> None:
    first = advance(ci, now=lambda: NOW, declared_attributes=DECLARED)
    again = advance(ci, journal=first.journal, now=lambda: NOW, declared_attributes=DECLARED)
    assert again.attributes == first.attributes
    assert not again.changed, "nothing is journaled: no format change, no new entry"
    assert [r.name for r in again.journal] == ["build", "cool-down"]


def test_an_undeclared_name_is_a_fatal_error_naming_it_and_the_fix() -> None:
    async def shard(event: Any, step: Any, env: Any) -> None:
        with contextlib.suppress(Exception):  # catching it changes nothing: the code is wrong
            await step.set_attributes({"tenantflow.dev/shard": "s-9"})
        await step.do("never", lambda: 1)

    out = advance(shard, now=lambda: NOW, declared_attributes=DECLARED)
    assert isinstance(out.outcome, Errored)
    assert out.outcome.error["name"] == "InvalidSearchAttribute"
    assert "'tenantflow.dev/shard'" in out.outcome.error["message"]
    assert out.attributes == {}, "nothing of it is set"

    async def undeclared(event: Any, step: Any, env: Any) -> None:
        await step.set_attributes(owner="bob")

    out = advance(undeclared, now=lambda: NOW, declared_attributes=DECLARED)
    assert isinstance(out.outcome, Errored)
    message = out.outcome.error["message"]
    assert "'owner'" in message and "spec.searchAttributes" in message, message
    nothing = advance(undeclared, now=lambda: NOW)  # a definition that declares none
    assert isinstance(nothing.outcome, Errored), "undeclared by default: never any label"


def test_a_value_that_cannot_be_a_label_is_refused_and_one_that_fits_to_nothing_removes() -> None:
    async def listed(event: Any, step: Any, env: Any) -> None:
        await step.set_attributes(status=["a"])

    out = advance(listed, now=lambda: NOW, declared_attributes=DECLARED)
    assert isinstance(out.outcome, Errored) and "list" in out.outcome.error["message"]

    async def odd(event: Any, step: Any, env: Any) -> None:
        await step.set_attributes(status="//", coverage=True)

    assert advance(odd, now=lambda: NOW, declared_attributes=DECLARED).attributes == {
        "status": None,
        "coverage": "true",
    }
    assert fit("x" * 100) == "x" * MAX_LABEL_VALUE and fit({"a": 1}) is None


def test_a_query_replay_sets_nothing() -> None:
    async def wf(event: Any, step: Any, env: Any) -> None:
        step.query("ping", lambda: "pong")
        await step.set_attributes(anything="at-all")  # not checked: nothing leaves a query
        await step.sleep("nap", "1h")

    answer = query(wf, "ping", now=lambda: NOW)
    assert answer.error is None and answer.value == "pong"


def test_the_test_env_exposes_them_and_checks_a_definitions_names() -> None:
    source = """
async def run(event, step, env):
    await step.do("build", lambda: 1)
    await step.set_attributes(status="tests-passed")
    await step.sleep("nap", "1d")
    await step.set_attributes(repo=None)
"""
    env = WorkflowTestEnv()
    declared = WorkflowSource(
        {"main.py": source}, search_attributes={"status": "s", "repo": "repo"}
    )
    result = env.run_sync(declared, params={"repo": "acme/web"})
    assert result.phase == "Complete"
    assert result.attributes == {"status": "tests-passed"}, "repo read at the start, then removed"
    stranger = WorkflowSource({"main.py": source}, search_attributes={"repo": "repo"})
    refused = env.run_sync(stranger, instance_id="other")
    assert refused.phase == "Errored" and refused.error is not None
    assert refused.error["name"] == "InvalidSearchAttribute"
    free = env.run_sync(source, instance_id="free")  # no definition: any name
    assert free.attributes == {"status": "tests-passed"}
