"""Loggers that modules create at import (before main() configures logging) write what
the configuration says: JSON lines in a pod, with the logger's name."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from tenantflow.observability.logging import configure, get_logger


@pytest.fixture
def configured() -> Iterator[None]:
    """configure() binds this test's captured stderr: the next tests get the defaults."""
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def test_a_logger_made_before_configure_follows_it(
    capsys: pytest.CaptureFixture[str], configured: None
) -> None:
    early = get_logger("tenantflow.egress")  # as a module does at import
    configure(json=True)
    early.warning("egress denied", host="nope.test")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "egress denied" and line["logger"] == "tenantflow.egress"
    assert line["host"] == "nope.test" and line["level"] == "warning"
