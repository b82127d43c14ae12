"""Progressive rollouts as pure decisions: assignment by name, steps, promotion, automatic
rollback, the CLI's commands applied once, pins that hold a rollout."""

from __future__ import annotations

import datetime as dt

import pytest

from tenantflow.durations import format_time
from tenantflow.lifecycle.rollout import (
    Assignment,
    Command,
    Outcome,
    Plan,
    RolloutState,
    Verdict,
    bucket,
    decide,
)
from tenantflow.vocabulary import Phase, RolloutPhase

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
PLAN = Plan(steps=(25, 100), min_instances=4, max_error_rate=0.2)


def at(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def finished(revision: int, phase: str, n: int, started: int = 1) -> list[Outcome]:
    return [Outcome(revision, phase, format_time(at(started)))] * n


def step(
    prev: RolloutState | None,
    outcomes: list[Outcome] | None = None,
    *,
    stable: int | None = 1,
    target: int | None = 2,
    plan: Plan | None = PLAN,
    held: str | None = None,
    command: Command | None = None,
    now: int = 10,
) -> Verdict:
    return decide(
        prev,
        stable=stable,
        target=target,
        plan=plan,
        held=held,
        outcomes=outcomes or [],
        command=command,
        now=at(now),
    )


def st(verdict: Verdict) -> RolloutState:
    """The verdict's rollout (there is one in these tests)."""
    assert verdict.state is not None
    return verdict.state


def started() -> RolloutState:
    return st(step(None, now=0))


def test_an_instance_name_always_lands_in_the_same_bucket_and_weights_split_fairly() -> None:
    names = [f"build-{i}" for i in range(10_000)]
    assert [bucket(n, 2) for n in names[:50]] == [bucket(n, 2) for n in names[:50]]
    share = sum(bucket(n, 2) < 30 for n in names) / len(names)
    assert 0.27 < share < 0.33, share
    # another canary samples other names: a bad name is not doomed to every canary
    assert {n for n in names if bucket(n, 2) < 10} != {n for n in names if bucket(n, 3) < 10}


def test_assignment_sends_only_a_progressing_rollouts_weight_to_the_canary() -> None:
    def picks(phase: str) -> set[int]:
        roll = {"phase": phase, "revision": 2, "weight": 50}
        assigned = Assignment.of({"activeRevision": 1, "rollout": roll})
        assert assigned is not None
        return {assigned.revision_for(f"i-{n}") for n in range(200)}

    assert picks("Progressing") == {1, 2}
    assert picks("RolledBack") == picks("Paused") == {1}
    assert Assignment.of({}) is None


def test_a_step_up_only_moves_names_to_the_canary_and_100_percent_takes_them_all() -> None:
    """What an instance runs is picked by the weight when it starts: one that starts after a
    step runs the canary if its name is below the new weight, and no name the canary had
    at a lower step goes back to the stable revision (e2e/test_rollouts.py counts on it)."""
    names = [f"deploy-{n}" for n in range(500)]

    def canary_at(weight: int) -> set[str]:
        return {n for n in names if Assignment(1, 2, weight).revision_for(n) == 2}

    assert canary_at(0) == set() and canary_at(100) == set(names)
    assert canary_at(10) < canary_at(50) < canary_at(100)
    assert canary_at(50) == {n for n in names if bucket(n, 2) < 50}


def test_the_first_revision_and_any_revision_without_a_plan_are_stable_at_once() -> None:
    assert step(None, stable=None, target=1) == Verdict(1, None, [])
    assert step(None, plan=None) == Verdict(2, None, [])


def test_a_new_revision_starts_as_a_canary_at_the_first_step() -> None:
    verdict = step(None, now=0)
    assert verdict.stable == 1 and verdict.state is not None
    assert (st(verdict).phase, st(verdict).weight, st(verdict).from_revision) == (
        RolloutPhase.PROGRESSING,
        25,
        1,
    )
    assert [e[1] for e in verdict.events] == ["RolloutStarted"]


def test_a_good_canary_steps_up_then_is_promoted() -> None:
    state = started()
    verdict = step(state, finished(2, Phase.COMPLETE, 3))
    assert verdict.state == RolloutState.of(st(verdict).to_status())
    assert st(verdict).weight == 25 and "3 of 4 finished" in st(verdict).message
    verdict = step(state, finished(2, Phase.COMPLETE, 4), now=20)
    assert st(verdict).weight == 100 and verdict.stable == 1
    assert [e[1] for e in verdict.events] == ["RolloutStepped"]
    # the next step counts only what started after it began
    state = st(verdict)
    assert st(step(state, finished(2, Phase.COMPLETE, 4), now=30)).phase == RolloutPhase.PROGRESSING
    verdict = step(state, finished(2, Phase.COMPLETE, 4, started=25), now=30)
    assert verdict.stable == 2 and st(verdict).phase == RolloutPhase.PROMOTED
    assert [e[1] for e in verdict.events] == ["RolloutPromoted"]
    # once stable, nothing more happens
    assert step(verdict.state, stable=2, target=2).events == []


def test_a_canary_above_the_error_rate_is_rolled_back_and_stays_so() -> None:
    state = started()
    # below minInstances nothing is judged, however bad
    assert st(step(state, finished(2, Phase.ERRORED, 3))).phase == RolloutPhase.PROGRESSING
    outcomes = finished(2, Phase.ERRORED, 2) + finished(2, Phase.COMPLETE, 2)
    verdict = step(state, outcomes)
    assert verdict.stable == 1 and verdict.state is not None
    assert (st(verdict).phase, st(verdict).weight) == (RolloutPhase.ROLLED_BACK, 0)
    assert "2 of 4 instances errored (50% > maxErrorRate 20%)" in st(verdict).message
    assert verdict.events[0][:2] == ("Warning", "RolloutRolledBack")
    # Git applies the same source again: the rollback holds
    again = step(verdict.state, outcomes + finished(2, Phase.COMPLETE, 50), now=99)
    assert again == Verdict(1, verdict.state, [])


def test_only_the_canarys_outcomes_in_its_window_count() -> None:
    state = started()
    noise = (
        finished(1, Phase.ERRORED, 10)  # the stable revision's
        + [Outcome(2, Phase.ERRORED, format_time(at(-5)))] * 10  # before the rollout
        + finished(2, Phase.TERMINATED, 10)  # says nothing about the code
        + [Outcome(None, None, None)] * 10  # not started
    )
    verdict = step(state, noise + finished(2, Phase.COMPLETE, 1))
    assert (st(verdict).phase, st(verdict).complete, st(verdict).errored) == (
        RolloutPhase.PROGRESSING,
        1,
        0,
    )


def test_cli_commands_apply_once_and_a_promote_resumes_a_rollback_with_a_fresh_window() -> None:
    state = started()
    abort = Command("abort", 2, "a1")
    verdict = step(state, command=abort)
    assert st(verdict).phase == RolloutPhase.ABORTED and verdict.stable == 1
    assert st(verdict).last_command == "a1"
    assert step(verdict.state, command=abort).events == []  # applied once
    # a command for another revision is not this rollout's
    assert st(step(state, command=Command("abort", 7, "x"))).phase == RolloutPhase.PROGRESSING
    bad = finished(2, Phase.ERRORED, 4)
    rolled = st(step(state, bad))
    assert rolled.phase == RolloutPhase.ROLLED_BACK
    resumed = step(rolled, bad, command=Command("promote", 2, "p1"), now=50)
    assert (st(resumed).phase, st(resumed).weight) == (RolloutPhase.PROGRESSING, 25)
    assert st(resumed).started_at == format_time(at(50))
    assert [e[1] for e in resumed.events] == ["RolloutStepped"]
    full = step(resumed.state, command=Command("promote-full", 2, "p2"), now=60)
    assert full.stable == 2 and st(full).phase == RolloutPhase.PROMOTED
    nxt = step(state, command=Command("promote", 2, "p3"))
    assert st(nxt).weight == 100 and st(nxt).phase == RolloutPhase.PROGRESSING


def test_a_pin_holds_a_rollout_and_releasing_it_resumes() -> None:
    state = started()
    held = step(state, finished(2, Phase.COMPLETE, 9), held="spec.pinnedRevision pins 1")
    assert st(held).phase == RolloutPhase.PAUSED and held.stable == 1
    assert "spec.pinnedRevision pins 1" in st(held).message
    resumed = step(held.state, finished(2, Phase.COMPLETE, 9), now=20)
    assert st(resumed).phase == RolloutPhase.PROGRESSING
    assert [e[1] for e in resumed.events] == ["RolloutResumed"]


def test_a_newer_source_supersedes_a_rollout_underway_and_so_does_going_back() -> None:
    state = started()
    newer = step(state, target=3)
    assert st(newer).revision == 3 and st(newer).from_revision == 1
    assert [e[1] for e in newer.events] == ["RolloutSuperseded", "RolloutStarted"]
    back = step(state, target=1)
    assert back.stable == 1 and st(back).phase == RolloutPhase.SUPERSEDED
    removed = step(state, plan=None)
    assert removed.stable == 2 and st(removed).phase == RolloutPhase.PROMOTED


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("promote", "must be JSON with action, revision and id"),
        ('{"action": "yolo", "revision": 2, "id": "x"}', "action must be one of"),
        ('{"action": "abort", "revision": "2", "id": "x"}', "revision a number"),
    ],
)
def test_a_command_the_cli_would_not_write_is_an_error_that_says_so(raw: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Command.parse({"tenantflow.dev/rollout-command": raw})
    assert Command.parse({}) is None
    cmd = Command("abort", 2, "x")
    assert Command.parse({"tenantflow.dev/rollout-command": cmd.annotation()}) == cmd
