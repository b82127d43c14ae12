"""Errors that end an instance because the workflow itself is wrong (not a step failure).

Each has a `reason` (CamelCase, used as the condition/Event reason and `status.error.name`).
They are fatal: catching them in workflow code does not stop the instance from erroring.
"""

from __future__ import annotations

from tenantflow.errors import TenantflowError


class EngineError(TenantflowError):
    reason = "EngineError"


class WorkflowDefinitionError(EngineError):
    """The source cannot be used: it does not compile, or `run` is missing or wrong."""

    reason = "InvalidDefinition"


class WorkflowSyntaxError(WorkflowDefinitionError):
    reason = "SyntaxError"


class EntrypointMissingError(WorkflowDefinitionError):
    reason = "EntrypointMissing"


class WorkflowSignatureError(WorkflowDefinitionError):
    reason = "EntrypointSignature"


class WorkflowImportError(WorkflowDefinitionError):
    reason = "ImportError"


class NonDeterminismError(EngineError):
    """Replay met a different step than the journal holds at that position."""

    reason = "NonDeterminism"


class DuplicateStepNameError(EngineError):
    reason = "DuplicateStepName"


class StepOutputError(EngineError):
    """A step (or run) returned something that is not JSON or is too large to keep."""

    reason = "InvalidOutput"


class StepLimitExceeded(EngineError):
    reason = "StepLimitExceeded"


class StepOptionsError(EngineError):
    """Bad `retries`/`timeout`/duration/name arguments to a step call."""

    reason = "InvalidStepOptions"


class InvalidAwaitError(EngineError):
    """`run` awaited something that is not a step (e.g. asyncio.sleep): it can never resume."""

    reason = "InvalidAwait"
