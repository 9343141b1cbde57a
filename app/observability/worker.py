"""Celery worker observability: task metrics, request ids on Celery's own lines, a metrics port.

Task metrics are recorded by Celery's signals in the process that runs the task (a prefork
child); with ``PROMETHEUS_MULTIPROC_DIR`` each child writes its own file and the worker's main
process serves the sum on ``WORKER_METRICS_PORT`` (off by default).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from celery import current_task
from celery.signals import (
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    task_success,
    worker_init,
    worker_process_shutdown,
)
from prometheus_client import start_http_server
from prometheus_client.multiprocess import mark_process_dead

from app.config import Settings
from app.core.messaging import REQUEST_ID_HEADER
from app.core.requests import current_request_id
from app.observability.endpoint import multiprocess_enabled, scrape_registry
from app.observability.metrics import (
    CELERY_TASK_DURATION,
    CELERY_TASKS,
    WEBHOOK_DELIVERY_ATTEMPTS,
)

logger = logging.getLogger(__name__)

# ``webhooks.deliver`` returns how its attempt ended (app.webhooks.background.deliver).
WEBHOOK_DELIVER_TASK = "webhooks.deliver"
WEBHOOK_OUTCOMES = frozenset({"success", "transient", "permanent"})
# Celery logs "Task ... succeeded in 0.1s" / "... raised ..." here, after the task returned.
CELERY_TRACE_LOGGER = "celery.app.trace"
_started: dict[str, float] = {}
_connected = False


def _task_name(sender: Any) -> str:
    return str(getattr(sender, "name", None) or "unknown")


def _on_prerun(task_id: str | None = None, **_kwargs: Any) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


def _on_postrun(
    sender: Any = None,
    task_id: str | None = None,
    retval: Any = None,
    state: str | None = None,
    **_kwargs: Any,
) -> None:
    started = _started.pop(task_id, None) if task_id else None
    name = _task_name(sender)
    if started is not None:
        CELERY_TASK_DURATION.labels(name).observe(time.perf_counter() - started)
    if name == WEBHOOK_DELIVER_TASK and state == "SUCCESS":
        outcome = retval if retval in WEBHOOK_OUTCOMES else "skipped"
        WEBHOOK_DELIVERY_ATTEMPTS.labels(outcome).inc()


def _on_success(sender: Any = None, **_kwargs: Any) -> None:
    CELERY_TASKS.labels(_task_name(sender), "succeeded").inc()


def _on_failure(sender: Any = None, **_kwargs: Any) -> None:
    CELERY_TASKS.labels(_task_name(sender), "failed").inc()


def _on_retry(sender: Any = None, **_kwargs: Any) -> None:
    CELERY_TASKS.labels(_task_name(sender), "retried").inc()


def task_request_id() -> str | None:
    """The request id carried by the message of the task running now (as FlaskTask binds it)."""
    task = current_task._get_current_object()
    if task is None:
        return None
    request = task.request
    request_id = getattr(request, REQUEST_ID_HEADER, None)
    if request_id is None and isinstance(request.headers, dict):
        request_id = request.headers.get(REQUEST_ID_HEADER)
    return str(request_id or request.id) if (request_id or request.id) else None


class TaskRequestIdFilter(logging.Filter):
    """Give Celery's own task lines the request id: they are written after FlaskTask unbound it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add ``request_id`` when the record has none; never drops a record."""
        if getattr(record, "request_id", None) is None and current_request_id() is None:
            request_id = task_request_id()
            if request_id:
                record.request_id = request_id
        return True


def _serve_worker_metrics(sender: Any = None, **_kwargs: Any) -> None:
    """In the worker's main process, before it forks: start the metrics port when configured."""
    flask_app = getattr(getattr(sender, "app", None), "flask_app", None)
    if flask_app is None:
        return
    settings: Settings = flask_app.extensions["settings"]
    if settings.WORKER_METRICS_PORT is None:
        return
    if settings.PROMETHEUS_MULTIPROC_DIR:
        # Files of a previous run would be added to this one's counters.
        remove_metric_files(Path(settings.PROMETHEUS_MULTIPROC_DIR))
    start_http_server(
        settings.WORKER_METRICS_PORT,
        addr=settings.WORKER_METRICS_HOST,
        registry=scrape_registry(database=False),
    )
    logger.info(
        "worker metrics served",
        extra={"port": settings.WORKER_METRICS_PORT, "host": settings.WORKER_METRICS_HOST},
    )


def _on_child_exit(pid: int | None = None, **_kwargs: Any) -> None:
    if pid is not None and multiprocess_enabled():
        mark_process_dead(pid)  # type: ignore[no-untyped-call]


def remove_metric_files(path: Path) -> None:
    """Delete prometheus_client's ``*.db`` files in ``path`` (nothing else, whatever the path)."""
    for entry in path.glob("*.db"):
        entry.unlink(missing_ok=True)


def init_worker_observability() -> None:
    """Connect the Celery signals (once per process; they are global)."""
    global _connected
    if _connected:
        return
    task_prerun.connect(_on_prerun, weak=False)
    task_postrun.connect(_on_postrun, weak=False)
    task_success.connect(_on_success, weak=False)
    task_failure.connect(_on_failure, weak=False)
    task_retry.connect(_on_retry, weak=False)
    worker_init.connect(_serve_worker_metrics, weak=False)
    worker_process_shutdown.connect(_on_child_exit, weak=False)
    logging.getLogger(CELERY_TRACE_LOGGER).addFilter(TaskRequestIdFilter())
    _connected = True
