"""Known secret values are masked (`***`) in what a worker answers, before it leaves the
sandbox: outputs, errors, journal entries and log lines, as CI systems mask secrets.

The runner does it, not the worker: tenant code runs in the worker's process and could
skip a mask applied there. It is a guard against accidents (a token echoed in an error
message, a step that returns a config with a password), not against a tenant that wants
to leak its own secret: an encoded or split value passes.
"""

from __future__ import annotations

import time
from typing import Any

from tenantflow.engine.secrets import Secrets

MASK = "***"
SHORTEST = 4  # shorter values would mask ordinary text everywhere
REFRESH_SECONDS = 10.0  # rotated Secrets reach the volume within the kubelet's sync anyway


class Redactor:
    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets
        self._values: list[str] = []
        self._read_at = float("-inf")

    def values(self) -> list[str]:
        now = time.monotonic()
        if now - self._read_at > REFRESH_SECONDS:
            self._values, self._read_at = self.secrets.values_to_redact(SHORTEST), now
        return self._values

    def redact(self, value: Any) -> Any:
        """`value` with every known secret value masked in its strings and keys."""
        values = self.values()
        return _walk(value, values) if values else value


def _walk(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, list):
        return [_walk(v, secrets) for v in value]
    if isinstance(value, dict):
        return {_walk(k, secrets): _walk(v, secrets) for k, v in value.items()}
    return value
