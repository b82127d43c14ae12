"""A sandbox call that failed: charged to the steps it killed, retried with backoff, or —
after the same worker died three advances in a row — the instance Errored."""

from __future__ import annotations

from dataclasses import dataclass, field

from tenantflow.controllers.instances.drive import Drive
from tenantflow.controllers.sandboxes import Sandboxes
from tenantflow.lifecycle import instance_state as state
from tenantflow.observability.logging import get_logger
from tenantflow.sandbox.isolation import NOT_ISOLATED
from tenantflow.sandbox.transport import SandboxUnavailable
from tenantflow.vocabulary import ConditionType, Phase

log = get_logger("tenantflow.instance")

SANDBOX_STARTING = frozenset({"SandboxNotReady", "SandboxNotProvisioned", NOT_ISOLATED})
WORKER_LOST = "SandboxWorkerLost"
WORKER_LOSSES_BEFORE_ERROR = 3
MAX_BACKOFF = 60.0


@dataclass
class SandboxFailures:
    sandboxes: Sandboxes
    failures: dict[str, int] = field(default_factory=dict)  # by instance, in a row
    worker_losses: dict[str, int] = field(default_factory=dict)  # by instance, in a row

    def succeeded(self, key: str) -> None:
        self.failures.pop(key, None)
        self.worker_losses.pop(key, None)

    def failed(self, d: Drive, exc: SandboxUnavailable) -> None:
        """Decide on `d` what this failure means for its instance."""
        if exc.lost_steps and exc.cause:  # those step attempts failed: the steps' retries
            self._charge_steps(d, exc.lost_steps, exc.cause)
            return
        count = self.failures[d.key] = self.failures.get(d.key, 0) + 1
        # worker losses in a row, apart from other failures: a sandbox that was not ready
        # or not reachable in between says nothing about the workflow's code
        losses = self.worker_losses.get(d.key, 0) + (exc.reason == WORKER_LOST)
        self.worker_losses[d.key] = losses
        if d.view.tenant:
            self.sandboxes.forget(d.view.tenant)
        log.warning(
            "sandbox call failed", instance=d.key, reason=exc.reason, error=str(exc), attempt=count
        )
        if exc.reason == WORKER_LOST and losses >= WORKER_LOSSES_BEFORE_ERROR:
            self.succeeded(d.key)
            error = {
                "name": WORKER_LOST,
                "message": f"{exc} ({losses} times in a row; the workflow code is likely "
                "exhausting CPU or memory, or exiting the process)",
            }
            d.write(
                {**state.pinned(d.status), **state.finished(Phase.ERRORED, d.now, error=error)},
                ("Warning", WORKER_LOST, error["message"]),
            )
            return
        d.condition(ConditionType.SANDBOX_REACHABLE, False, exc.reason, str(exc))
        # a sandbox pod on its way (a new tenant, a restart) is ready within seconds: look
        # again soon, then back off as for any other failure
        first = 0.5 if exc.reason in SANDBOX_STARTING else 2.0
        d.later(min(first * 2 ** (count - 1), MAX_BACKOFF))

    def _charge_steps(self, d: Drive, lost: dict[str, int], cause: dict[str, str]) -> None:
        """Record step attempts killed with their process as failed attempts; the next
        advance retries them by their own policy (or errors them), like any failure."""
        self.failures.pop(d.key, None)
        recorded = state.charge_lost_attempts(
            d.status.get("lostAttempts") or {}, d.status.get("steps") or [], lost, cause
        )
        names = ", ".join(sorted(lost))
        log.warning("step attempts lost", instance=d.key, steps=lost, cause=cause["name"])
        d.write(
            {**state.pinned(d.status, "phase"), "lostAttempts": recorded},
            ("Warning", cause["name"], f"step(s) {names}: {cause['message']}"[:1000]),
        )
        d.again = True  # at once once recorded; in a second if the write lost a race
        d.later(1)
