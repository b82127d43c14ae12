"""The durable execution engine: replay `run(event, step, env)` against a journal.

Pure Python: no Kubernetes, no network. `advance()` is the one operation the operator,
the sandbox and `tenantflow.testing` all use.
"""

from tenantflow.engine.executor import advance
from tenantflow.engine.journal import StepKind, StepRecord, StepState
from tenantflow.engine.options import EngineLimits, RetryPolicy, StepDefaults
from tenantflow.engine.outcome import Advance, Complete, Errored, Waiting, Yielded

__all__ = [
    "Advance",
    "Complete",
    "EngineLimits",
    "Errored",
    "RetryPolicy",
    "StepDefaults",
    "StepKind",
    "StepRecord",
    "StepState",
    "Waiting",
    "Yielded",
    "advance",
]
