"""Known secret values are masked (`***`) in everything the runner sends out of the
sandbox: answers (outputs, errors, journal entries, log lines), its 400 and 503 answers,
lost-attempt reports, as CI systems mask secrets (the rules: `engine.masking`).

The runner does it, not the worker: tenant code runs in the worker's process and could
skip a mask applied there. It is a guard against accidents (a token echoed in an error
message, a step that returns a config with a password), not against a tenant that wants
to leak its own secret: an encoded or split value passes.
"""

from __future__ import annotations

import time
from typing import Any

from tenantflow.engine import masking
from tenantflow.engine.secrets import Secrets

REFRESH_SECONDS = 10.0  # rotated Secrets reach the volume within the kubelet's sync anyway


class Redactor:
    """The Tenant's secret values, re-read every REFRESH_SECONDS, and masking with them;
    a Redactor over no Secrets (`Secrets(None)`) changes nothing."""

    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets
        self._values: list[str] = []
        self._read_at = float("-inf")

    def values(self) -> list[str]:
        now = time.monotonic()
        if now - self._read_at > REFRESH_SECONDS:
            self._values, self._read_at = masking.secret_values(self.secrets), now
        return self._values

    def redact(self, value: Any) -> Any:
        """`value` (JSON) with every known secret value masked in its strings and keys."""
        return masking.mask_json(value, self.values())

    def cut(self, text: str, limit: int) -> str:
        """`text` masked, then cut to `limit` characters without leaving part of a value."""
        return masking.cut(text, limit, self.values())
