"""structlog setup: JSON lines inside a cluster (or when asked), coloured key=value locally."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog


def configure(*, json: bool | None = None, level: str | None = None) -> None:
    """Configure structlog and the stdlib root logger once per process.

    `json` defaults to True inside a pod (KUBERNETES_SERVICE_HOST set) or when
    TENANTFLOW_LOG_FORMAT=json, so `kubectl logs` gives machine-readable lines.
    """
    if json is None:
        fmt = os.environ.get("TENANTFLOW_LOG_FORMAT", "")
        json = fmt == "json" or (fmt == "" and "KUBERNETES_SERVICE_HOST" in os.environ)
    lvl = getattr(logging, (level or os.environ.get("TENANTFLOW_LOG_LEVEL", "INFO")).upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _logger_field,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=lvl, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger carrying `logger=name`. It stays lazy: modules create theirs at import,
    before `configure()` runs in main(), and a `.bind()` here would freeze the default
    (console) configuration into it."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name, logger_name=name)
    return logger


def _logger_field(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """`logger_name` (what get_logger can carry lazily) is written as `logger`."""
    if "logger_name" in event:
        event["logger"] = event.pop("logger_name")
    return event
