"""Fixtures of the chart tests that drive instances with the chart's pods alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import OperatorProcess


@pytest.fixture
def only_the_chart(operator_process: OperatorProcess) -> Iterator[None]:
    """The session's operator process stopped for the test (and started again after), so
    that only the chart's pods under test drive the tenant."""
    operator_process.stop()
    try:
        yield
    finally:
        operator_process.start()
