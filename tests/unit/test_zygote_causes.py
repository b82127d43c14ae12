"""Why an advance's child ended without answering, as the zygote tells the runner:
its deadline, its CPU allowance (RLIMIT_CPU: all its threads), the memory limit, or
another death (sandbox/pod/zygote.py, `Child.cause`)."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from tenantflow.sandbox.pod import worker
from tenantflow.sandbox.pod.zygote import Child
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
