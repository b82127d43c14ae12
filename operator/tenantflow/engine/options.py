"""Step options (retries, timeouts) and the engine's limits, as small frozen dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from tenantflow.durations import DurationError, parse_duration
from tenantflow.engine.errors import StepOptionsError
from tenantflow.vocabulary import Limits

Backoff = Literal["constant", "linear", "exponential"]
_BACKOFFS = ("constant", "linear", "exponential")
_RETRY_KEYS = {"limit", "delay", "backoff", "maxDelay"}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`limit` retries after the first attempt; the n-th retry waits delay_for(n) seconds."""

    limit: int = 5
    delay: float = 10.0
    backoff: Backoff = "exponential"
    max_delay: float = 3600.0

    def delay_for(self, retry: int) -> float:
        factor = {"constant": 1, "linear": retry, "exponential": 2 ** (retry - 1)}[self.backoff]
        return float(min(self.delay * factor, self.max_delay))

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None, *, where: str) -> RetryPolicy:
        """The policy a CRD's `retries` (or a step's `retries={...}`) describes, on top of
        the defaults; the one conversion from the API's camelCase durations."""
        return cls().merged(spec, step=where)

    def to_wire(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "delay": self.delay,
            "backoff": self.backoff,
            "maxDelay": self.max_delay,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            limit=int(data["limit"]),
            delay=float(data["delay"]),
            backoff=data["backoff"],
            max_delay=float(data["maxDelay"]),
        )

    def merged(self, overrides: Mapping[str, Any] | None, *, step: str) -> RetryPolicy:
        """This policy with a step's `retries={...}` applied, validated with clear messages."""
        if not overrides:
            return self
        where = f"step {step!r}: retries"
        if not isinstance(overrides, Mapping):
            raise StepOptionsError(f"{where} must be a dict like {{'limit': 3, 'delay': '2s'}}")
        unknown = set(overrides) - _RETRY_KEYS
        if unknown:
            raise StepOptionsError(
                f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_RETRY_KEYS)}"
            )
        limit = overrides.get("limit", self.limit)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 1000:
            raise StepOptionsError(f"{where}.limit must be an integer 0..1000, got {limit!r}")
        backoff = overrides.get("backoff", self.backoff)
        if backoff not in _BACKOFFS:
            raise StepOptionsError(f"{where}.backoff must be one of {_BACKOFFS}, got {backoff!r}")
        try:
            delay = parse_duration(overrides.get("delay", self.delay), field=f"{where}.delay")
            max_delay = parse_duration(
                overrides.get("maxDelay", self.max_delay), field=f"{where}.maxDelay"
            )
        except DurationError as exc:
            raise StepOptionsError(str(exc)) from None
        return replace(self, limit=limit, delay=delay, backoff=backoff, max_delay=max_delay)


@dataclass(frozen=True, slots=True)
class StepDefaults:
    """From `WorkflowDefinition.spec.defaults`: what a step gets when it says nothing."""

    retries: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 600.0
    event_timeout: float = 86400.0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> StepDefaults:
        """From a definition's `spec.defaults` (camelCase, durations as the CRD has them)."""
        spec = spec or {}
        policy = RetryPolicy.from_spec(spec.get("retries"), where="(definition defaults)")
        timeout = spec.get("timeout")
        if timeout is None:
            return cls(retries=policy)
        try:
            seconds = parse_duration(timeout, field="spec.defaults.timeout")
        except DurationError as exc:
            raise StepOptionsError(str(exc)) from None
        return cls(retries=policy, timeout=seconds)


@dataclass(frozen=True, slots=True)
class EngineLimits:
    """Per-tenant bounds (Tenant.spec.limits) plus the engine's own batching knobs."""

    max_steps: int = Limits.MAX_STEPS_PER_INSTANCE
    max_step_timeout: float = float(Limits.MAX_STEP_TIMEOUT_SECONDS)
    inline_output_bytes: int = 16 * 1024
    max_output_bytes: int = 8 * 1024 * 1024  # any single output, even offloaded
    max_wait_seconds: float = 365 * 86400.0
    # group commit: after this many newly finished steps (or seconds) an advance yields
    batch_steps: int = 100
    batch_seconds: float = 5.0
