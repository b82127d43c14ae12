"""The dev cluster's watchdog: dead components come back, crash loops back off, a requested
restart is immediate. Real processes (`sh`), a synthetic clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenantflow_dev.devcluster import process, watchdog
from tenantflow_dev.devcluster.state import State


def _cluster(tmp_path: Path, **scripts: str) -> tuple[Path, State]:
    """A cluster directory whose components are shell one-liners (the directory is in their
    command line, which is how the watchdog knows its processes)."""
    directory = tmp_path.resolve()
    state = State(argv={n: ["/bin/sh", "-c", s, f"{directory}/"] for n, s in scripts.items()})
    for name, argv in state.argv.items():
        state.pids[name] = process.spawn(name, argv, directory / "logs", directory).pid
    state.save(directory / "state.json")
    return directory, state


def _state(directory: Path) -> State:
    state = State.load(directory / "state.json")
    assert state is not None
    return state


def _restarts(directory: Path) -> dict[str, int]:
    return _state(directory).restarts


@pytest.fixture
def cleanup(tmp_path: Path) -> Iterator[None]:
    yield
    process.stop(process.owned_pids(tmp_path.resolve()), tmp_path.resolve())


@pytest.mark.usefixtures("cleanup")
def test_a_dead_component_is_started_again_with_its_command_line(tmp_path: Path) -> None:
    directory, first = _cluster(tmp_path, steady="sleep 60", victim="sleep 60")
    dog = watchdog.Watchdog(directory)
    dog.check(time.monotonic())
    assert _state(directory) == first, "nothing died: nothing restarted"
    process.stop([first.pids["victim"]], directory)
    dog.check(time.monotonic())
    now = _state(directory)
    assert now.pids["steady"] == first.pids["steady"]
    assert now.pids["victim"] != first.pids["victim"]
    assert process.is_ours(now.pids["victim"], directory)
    assert now.restarts == {"victim": 1}


@pytest.mark.usefixtures("cleanup")
def test_a_crash_loop_backs_off_and_a_requested_restart_does_not(tmp_path: Path) -> None:
    directory, _ = _cluster(tmp_path, crasher="exit 3")
    dog = watchdog.Watchdog(directory)
    t0 = time.monotonic()
    time.sleep(0.2)
    dog.check(t0)  # died once, after a long life: at once
    assert _restarts(directory) == {"crasher": 1}
    time.sleep(0.2)  # it dies again straight away
    dog.check(t0 + 0.5)
    assert _restarts(directory) == {"crasher": 1}, "waits 1 s"
    dog.check(t0 + 1.6)
    assert _restarts(directory) == {"crasher": 2}
    time.sleep(0.2)
    dog.check(t0 + 1.7)  # third death: 2 s
    dog.check(t0 + 3.0)
    assert _restarts(directory) == {"crasher": 2}
    dog.check(t0 + 3.8)
    assert _restarts(directory) == {"crasher": 3}
    time.sleep(0.2)
    watchdog.request_marker(directory, "crasher").touch()  # `DevCluster.restart` asked
    dog.check(t0 + 3.9)
    assert _restarts(directory) == {"crasher": 4}
    assert not watchdog.request_marker(directory, "crasher").exists()


def test_backoff_doubles_to_a_ceiling_and_resets_after_a_stable_minute() -> None:
    b = watchdog.Backoff()
    delays = []
    for i in range(8):
        b.died(float(i), requested=False)
        delays.append(b.delay)
        b.started = float(i)
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    b.died(b.started + watchdog.STABLE_SECONDS, requested=False)
    assert b.delay == 0.0
