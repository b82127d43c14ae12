"""Why an advance's child ended without answering, as the zygote tells the runner:
its deadline, its CPU allowance (RLIMIT_CPU: all its threads), the memory limit, or
another death (sandbox/pod/zygote.py, `Child.cause`)."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest

from tenantflow.sandbox.pod import worker
from tenantflow.sandbox.pod.zygote import Child, OomCounter
from tenantflow.sandbox.protocol import frames

pytestmark = pytest.mark.unit
KILLED = signal.SIGKILL.value  # a wait status: killed by that signal, no core


def child(budget: float = 10.0, **state: bool) -> Child:
    a, b = socket.socketpair()
    b.close()
    return Child(time.monotonic() + budget, budget, a, None, **state)


def test_a_child_killed_past_its_cpu_allowance_is_the_steps_timeout_and_says_so() -> None:
    allowance = worker.cpu_seconds(10.0)
    assert allowance == 10 + worker.CPU_SLACK_SECONDS
    cause = child().cause(KILLED, cpu=allowance + 0.01)
    assert cause["name"] == frames.STEP_TIMEOUT
    assert f"used its CPU allowance ({allowance}s of CPU across its threads" in cause["message"]
    assert "SIGKILL" in cause["message"]


def test_other_deaths_keep_their_own_causes() -> None:
    # killed with CPU to spare: not the allowance
    assert child().cause(KILLED, cpu=1.0)["name"] == frames.WORKER_KILLED
    # an exit, however much CPU it used, is no kill
    assert child().cause(3 << 8, cpu=100.0)["name"] == frames.WORKER_KILLED
    # the deadline comes first when the zygote killed it there
    overdue = child(overdue=True).cause(KILLED, cpu=100.0)
    assert overdue["name"] == frames.STEP_TIMEOUT and "deadline" in overdue["message"]
    crowded = child(crowded=True).cause(KILLED, cpu=100.0)
    assert crowded["name"] == frames.TOO_MANY_PROCESSES


def test_a_death_while_the_oom_count_rose_is_the_memory_limit(tmp_path: Path) -> None:
    """The count is read through one descriptor kept open (before each advance and at each
    death): a rewrite of the file in place is seen without opening it again."""
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")

    class Counter(OomCounter):
        PATHS = (str(tmp_path / "absent"), str(events))

    oom = Counter()
    before = oom.kills()
    with events.open("r+") as f:  # in place, as the kernel's file changes
        f.write("low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n")
    dying = Child(time.monotonic() + 10, 10.0, socket.socketpair()[0], before)
    assert (before, oom.kills()) == (1, 2)
    assert dying.cause(KILLED, cpu=0.1, oom_after=oom.kills())["name"] == frames.OUT_OF_MEMORY
    assert dying.cause(KILLED, cpu=0.1, oom_after=before)["name"] == frames.WORKER_KILLED

    class Nowhere(OomCounter):
        PATHS = (str(tmp_path / "absent"),)

    assert Nowhere().kills() is None, "no such file: no count, never a guess"
