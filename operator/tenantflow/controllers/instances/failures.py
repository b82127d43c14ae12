"""A sandbox call that failed: retried with backoff, or — after the same worker died
three advances in a row — the instance Errored. A sandbox scaled to zero while idle is
no failure: the instance waits for it (`WaitingForSandbox`, no Warning, no strike) and is
driven again as soon as it is ready. A loss the sandbox reports with the step
attempts it killed (the kernel's memory limit, the advance's deadline) is such a worker
loss too: those attempts are also charged to their steps, but the report comes from where
tenant code runs and can be forged, so it buys no sooner retry and no way past the
strike limit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tenantflow.controllers.instances.drive import Drive
from tenantflow.controllers.sandboxes import Sandboxes
from tenantflow.lifecycle import instance_state as state
from tenantflow.observability.logging import get_logger
from tenantflow.sandbox.client.transport import SandboxUnavailable
from tenantflow.sandbox.protocol.payload import NOT_ISOLATED
from tenantflow.tenancy.idle import WAITING_FOR_SANDBOX
from tenantflow.vocabulary import ConditionType, ObjectKey, Phase

log = get_logger("tenantflow.instance")

SANDBOX_STARTING = frozenset({"SandboxNotReady", "SandboxNotProvisioned", NOT_ISOLATED})
WORKER_LOST = "SandboxWorkerLost"
WORKER_LOSSES_BEFORE_ERROR = 3
MAX_BACKOFF = 60.0
MAX_EVENT_MESSAGE = 1000
# a sandbox starting from zero drives its waiters when ready; this is only the safety net
SANDBOX_WAIT_RECHECK = 10.0


@dataclass
class SandboxFailures:
    sandboxes: Sandboxes
    failures: dict[ObjectKey, int] = field(default_factory=dict)  # by instance, in a row
    worker_losses: dict[ObjectKey, int] = field(default_factory=dict)  # by instance, in a row

    def succeeded(self, key: ObjectKey) -> None:
        self.failures.pop(key, None)
        self.worker_losses.pop(key, None)

    def failed(self, d: Drive, exc: SandboxUnavailable) -> None:
        """Decide on `d` what this failure means for its instance."""
        if exc.reason == WAITING_FOR_SANDBOX:
            self._wait_for_sandbox(d, exc)
            return
        count = self.failures[d.key] = self.failures.get(d.key, 0) + 1
        # worker losses in a row, apart from other failures: a sandbox that was not ready
        # or not reachable in between says nothing about the workflow's code
        losses = self.worker_losses.get(d.key, 0) + (exc.reason == WORKER_LOST)
        self.worker_losses[d.key] = losses
        if d.view.tenant:
            self.sandboxes.forget(d.view.tenant)
        log.warning(
            "sandbox call failed",
            instance=d.key,
            reason=exc.reason,
            error=str(exc),
            attempt=count,
            lost_steps=len(exc.lost_steps),
        )
        if exc.reason == WORKER_LOST and losses >= WORKER_LOSSES_BEFORE_ERROR:
            self.succeeded(d.key)
            error = {
                "name": WORKER_LOST,
                "message": f"{exc} ({losses} times in a row; the workflow code is likely "
                "exhausting CPU or memory, or exiting the process)",
            }
            d.write(
                {**state.pinned(d.status), **self._ended(d, error)},
                ("Warning", WORKER_LOST, error["message"][:MAX_EVENT_MESSAGE]),
            )
            if d.update and d.update.get("phase") == Phase.COMPENSATING:
                d.again = True  # its rollbacks run next
            return
        d.condition(ConditionType.SANDBOX_REACHABLE, False, exc.reason, str(exc))
        if exc.reason in SANDBOX_STARTING and d.view.tenant:
            # driven again as soon as its runner answers (the tenant controller asks it),
            # not only at the end of the backoff below
            self.sandboxes.waiting_for(d.view.tenant, d.key)
        if exc.lost_steps and exc.cause:
            self._charge_steps(d, exc.lost_steps, exc.cause)
        # a sandbox pod on its way (a new tenant, a restart) is ready within seconds: look
        # again soon, then back off as for any other failure
        first = 0.5 if exc.reason in SANDBOX_STARTING else 2.0
        d.later(min(first * 2 ** (count - 1), MAX_BACKOFF))

    @staticmethod
    def _ended(d: Drive, error: dict[str, str]) -> dict[str, Any]:
        """A sandbox that keeps crashing fails the instance: its rollbacks run first, if
        it owes any (Compensating); while compensating, the chain stops (RollbackFailed,
        which `tenantflow retry` resumes); else Errored."""
        if d.view.phase == Phase.COMPENSATING:
            step = next(
                (
                    str(e.get("name"))
                    for e in reversed(d.status.get("steps") or [])
                    if e.get("kind") == "rollback" and e.get("state") != "Complete"
                ),
                None,
            )
            return state.finished(Phase.ROLLBACK_FAILED, d.now, error={**error, "step": step})
        begun = state.begin_compensation(d.status, error, d.now)
        return begun or state.finished(Phase.ERRORED, d.now, error=error)

    def _wait_for_sandbox(self, d: Drive, exc: SandboxUnavailable) -> None:
        """Its sandbox is starting from zero: a visible wait, not an error (no Warning, no
        failure count, no worker-loss strike; nothing ran, so nothing runs twice)."""
        if d.view.tenant:
            self.sandboxes.waiting_for(d.view.tenant, d.key)
        log.info("waiting for the sandbox", instance=d.key)
        d.condition(ConditionType.SANDBOX_REACHABLE, False, exc.reason, str(exc), warn=False)
        d.later(SANDBOX_WAIT_RECHECK)

    @staticmethod
    def _charge_steps(d: Drive, lost: dict[str, int], cause: dict[str, str]) -> None:
        """Record step attempts killed with their process as failed attempts (bounded):
        the next advance retries them by their own policy (or errors them)."""
        recorded = state.charge_lost_attempts(
            d.status.get("lostAttempts") or {}, d.status.get("steps") or [], lost, cause
        )
        names = ", ".join(sorted(lost))
        log.warning("step attempts lost", instance=d.key, steps=len(lost), cause=cause["name"])
        d.write(
            {**state.pinned(d.status, "phase"), "lostAttempts": recorded},
            ("Warning", cause["name"], f"step(s) {names}: {cause['message']}"[:MAX_EVENT_MESSAGE]),
        )
