"""Observability: a JSON line per request, Prometheus metrics, optional Sentry and OpenTelemetry.

A composition-level package (like ``celery_app``): the app factory calls ``init_observability``.
``metrics`` is a leaf that any layer may import to count something.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from app.config import ConfigError, Settings
from app.core.limits import on_storage_error
from app.observability.endpoint import init_metrics_endpoint, multiprocess_enabled
from app.observability.metrics import RATE_LIMIT_STORAGE_ERRORS
from app.observability.request_log import init_request_log
from app.observability.tracing import init_sentry, init_tracing
from app.observability.worker import init_worker_observability


def check_multiprocess(settings: Settings) -> None:
    """Refuse a ``PROMETHEUS_MULTIPROC_DIR`` that prometheus_client did not pick up."""
    directory = settings.PROMETHEUS_MULTIPROC_DIR
    if not directory:
        return
    if not Path(directory).is_dir():
        raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR: {directory} is not a directory")
    if not multiprocess_enabled():
        # prometheus_client reads the variable from the process environment at import time;
        # a value in .env alone reaches the settings but not the library.
        raise ConfigError(
            "PROMETHEUS_MULTIPROC_DIR: must be in the process environment before start-up "
            "(prometheus_client reads it itself; .env is not enough)"
        )


def init_observability(app: Flask, settings: Settings) -> None:
    """Request log, HTTP and task metrics, ``/metrics``, and Sentry / traces when configured."""
    check_multiprocess(settings)
    init_request_log(app)
    init_metrics_endpoint(app, settings.METRICS_ALLOWED_IPS)
    on_storage_error(app, RATE_LIMIT_STORAGE_ERRORS.inc)
    init_worker_observability()
    init_sentry(settings)
    init_tracing(app, settings)
