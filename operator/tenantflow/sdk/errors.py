"""Exceptions workflow code raises or catches."""

from __future__ import annotations

from tenantflow.errors import TenantflowError


class WorkflowError(TenantflowError):
    """Base of the exceptions workflow code sees."""


class NonRetryableError(WorkflowError):
    """Raise inside a `step.do` callable to fail the step at once, without retries."""


class StepError(WorkflowError):
    """A `step.do` failed for good: retries exhausted, timed out, or NonRetryableError.

    Carries the original error's name and message (not the object: on a replay only the
    journal is left), so handling is identical on every replay.
    """

    def __init__(self, step: str, error_name: str, error_message: str, attempts: int) -> None:
        self.step = step
        self.error_name = error_name
        self.error_message = error_message
        self.attempts = attempts
        super().__init__(
            f"step {step!r} failed after {attempts} attempt(s): {error_name}: {error_message}"
        )


class WaitTimeout(WorkflowError):
    """`step.wait_for_event` saw no matching event before its timeout."""

    def __init__(self, step: str, event_type: str, timeout: str) -> None:
        self.step = step
        self.event_type = event_type
        super().__init__(f"step {step!r}: no {event_type!r} event within {timeout}")
