"""Unit tests log as the operator does in a pod (JSON lines): the local console renderer
draws every logged exception as a rich traceback, ~1.7 s each, which made the fault tests
(hundreds of injected failures, each logged) spend nearly all their time drawing."""

from __future__ import annotations

import pytest

from tenantflow.observability.logging import configure


@pytest.fixture(autouse=True, scope="session")
def _json_logs() -> None:
    configure(json=True)
