"""The error hierarchy: everything tenantflow raises on purpose derives from TenantflowError.

Tenant-facing errors (what workflow code can catch) live in `tenantflow.sdk`; they derive
from here too, so an operator-side `except TenantflowError` never swallows a plain bug.
"""

from __future__ import annotations


class TenantflowError(Exception):
    """Root of every deliberate tenantflow error."""


class ConfigurationError(TenantflowError):
    """The environment or a setting is wrong; the message says what to change."""


class DevClusterError(TenantflowError):
    """The local control plane could not be built, started or stopped."""
