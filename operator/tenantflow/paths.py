"""Where tenantflow keeps what it caches on this machine (runtime and dev tooling alike)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of everything tenantflow caches on this machine (override: TENANTFLOW_CACHE)."""
    return Path(os.environ.get("TENANTFLOW_CACHE", Path.home() / ".cache" / "tenantflow"))
