"""A token bucket: `rate` tokens per second, holding at most `burst`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1 (got {self.rate}, {self.burst})")
        self.tokens, self.stamp = self.burst, self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def try_take(self, n: float = 1.0) -> bool:
        self._refill()
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def wait_time(self, n: float = 1.0) -> float:
        """Seconds until `n` tokens are available (0 when they are now)."""
        self._refill()
        return max(0.0, (n - self.tokens) / self.rate)

    def reconfigure(self, rate: float, burst: float) -> None:
        """New limits keep the tokens already earned (capped by the new burst)."""
        self._refill()
        self.rate, self.burst = rate, burst
        self.tokens = min(self.tokens, burst)


def tuned(bucket: TokenBucket | None, rate: float, burst: float) -> TokenBucket:
    """`bucket` set to these limits (keeping the tokens it earned), or a new, full one."""
    if bucket is None:
        return TokenBucket(rate, burst)
    if (bucket.rate, bucket.burst) != (rate, burst):
        bucket.reconfigure(rate, burst)
    return bucket
