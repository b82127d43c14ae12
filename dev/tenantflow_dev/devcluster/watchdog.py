"""The dev cluster's watchdog: restarts a component that died, with backoff.

A real cluster's control plane runs under systemd or as static pods, and the kubelet or
systemd brings a dead component back; a dev cluster without that loses a component for good
(kube-scheduler exits on "Scheduler cache is corrupted" after an API server restart, and every
pod created afterwards stays Pending). This process is that supervisor: it watches the pids in
state.json, starts a dead component again with its recorded command line, and waits
1 s, 2 s, 4 s ... up to 30 s between attempts while a component keeps dying (reset after a
minute of life). `restart` (chaos) only stops a component and lets this bring it back, so one
process alone writes the pids.
Run as a dev-cluster component: `python -m tenantflow_dev.devcluster.watchdog --dir DIR`.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from tenantflow.observability.logging import configure, get_logger
from tenantflow_dev.devcluster import process
from tenantflow_dev.devcluster.state import State

log = get_logger("tenantflow_dev.devcluster.watchdog")

NAME = "watchdog"
POLL_SECONDS = 0.25
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 30.0
STABLE_SECONDS = 60.0  # alive this long: the next death restarts at once again


@dataclass
class Backoff:
    """When a dead component is started again: at once after a minute of life or a requested
    restart, else after a delay that doubles while it keeps dying."""

    delay: float = 0.0
    started: float = float("-inf")  # when this watchdog last started it (never: long ago)
    due: float | None = None  # set while the component is dead

    def died(self, now: float, *, requested: bool) -> None:
        if requested or now - self.started >= STABLE_SECONDS:
            self.delay = 0.0
        else:
            self.delay = min(MAX_BACKOFF, max(FIRST_BACKOFF, self.delay * 2))
        self.due = now + self.delay


def request_marker(directory: Path, component: str) -> Path:
    """Written by `DevCluster.restart` before it stops a component: a wanted death, not a
    crash, so the component comes back at once whatever its backoff."""
    return directory / f"restart-{component}.requested"


class Watchdog:
    """Supervises every component of the cluster in `directory` but itself."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.state_file = directory / "state.json"
        self.logs = directory / "logs"
        self.backoff: dict[str, Backoff] = {}
        self.children: dict[str, subprocess.Popen[bytes]] = {}  # reaped by poll()
        self.stopping = False

    def check(self, now: float) -> None:
        """One pass: start again each dead component whose backoff has run out."""
        state = State.load(self.state_file)
        if state is None:
            return
        restarted = [name for name in state.argv if name != NAME and self._revive(name, state, now)]
        if restarted:
            state.save(self.state_file)

    def _revive(self, name: str, state: State, now: float) -> bool:
        child = self.children.get(name)
        alive = child.poll() is None if child else process.is_ours(state.pids[name], self.dir)
        backoff = self.backoff.setdefault(name, Backoff())
        if alive:
            return False
        if backoff.due is None:
            marker = request_marker(self.dir, name)
            requested = marker.exists()
            marker.unlink(missing_ok=True)
            backoff.died(now, requested=requested)
            (log.info if requested else log.warning)(
                "component stopped on request" if requested else "component died",
                component=name,
                restart_in_s=backoff.delay,
                last_lines=process.log_tail(self.logs / f"{name}.log", 5),
            )
        if backoff.due is not None and now < backoff.due:
            return False
        self.children[name] = process.spawn(name, state.argv[name], self.logs, self.dir)
        state.pids[name] = self.children[name].pid
        state.restarts[name] = state.restarts.get(name, 0) + 1
        backoff.started, backoff.due = now, None
        log.info("component restarted", component=name, restarts=state.restarts[name])
        return True

    def run(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("watchdog started", directory=str(self.dir))
        while not self.stopping:
            self.check(time.monotonic())
            time.sleep(POLL_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tenantflow_dev.devcluster.watchdog")
    parser.add_argument("--dir", type=Path, required=True, help="the dev cluster's directory")
    args = parser.parse_args()
    configure()
    Watchdog(args.dir.resolve()).run()


if __name__ == "__main__":
    main()
