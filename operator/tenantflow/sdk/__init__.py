"""What tenant workflow code imports.

    from tenantflow.sdk import NonRetryableError, WaitTimeout, StepError

The engine raises `StepError` (a step failed for good) and `WaitTimeout` (no event in
time) into workflow code, the same way on the first run and on every replay, so
`except` clauses behave identically whether or not the instance was resumed.
"""

from __future__ import annotations

from tenantflow.sdk.errors import NonRetryableError, StepError, WaitTimeout, WorkflowError
from tenantflow.sdk.types import Env, RollbackContext, Step, current_attempt

__all__ = [
    "Env",
    "NonRetryableError",
    "RollbackContext",
    "Step",
    "StepError",
    "WaitTimeout",
    "WorkflowError",
    "current_attempt",
]
