"""Celery bound to the Flask app (the Flask docs' ``celery_init_app`` pattern).

Every task runs inside the app context, with the request id of the request that caused it.
Each feature's Celery tasks live in its ``background.py`` and are discovered here.
"""

from __future__ import annotations

import gc
from typing import Any

from celery import Celery, Task
from celery.signals import (
    before_task_publish,
    task_postrun,
    worker_init,
    worker_process_init,
)
from flask import Flask
from kombu import Queue  # type: ignore[attr-defined]

from app.config import Settings
from app.core.broker import repair_redis_acknowledgements
from app.core.messaging import REQUEST_ID_HEADER
from app.core.requests import current_request_id, set_request_id
from app.extensions import db

QUEUES = ("events", "notifications", "jobs")
FAILED_STATES = frozenset({"FAILURE", "RETRY"})
# Feature packages whose ``background`` module defines tasks and event consumers.
BACKGROUND_PACKAGES = [
    "app.events",
    "app.webhooks",
    "app.notifications",
    "app.users",
    "app.tasks",
    "app.maintenance",
    "app.jobs",
    "app.idempotency",
]


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings; each reliability choice says why."""
    transport_options: dict[str, Any] = {}
    if settings.broker_is_redis:
        transport_options = {
            # Unacknowledged messages come back after this long: longer than any countdown we
            # use (CELERY_MAX_COUNTDOWN_SECONDS), or a delayed task would be delivered twice.
            "visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT_SECONDS,
            # A dead Redis must cost milliseconds, not the OS default of minutes.
            "socket_timeout": settings.REDIS_SOCKET_TIMEOUT_SECONDS,
            "socket_connect_timeout": settings.REDIS_SOCKET_TIMEOUT_SECONDS,
            # A publisher tries to connect twice, 0.1 s apart, then gives up (kombu's default
            # is about 6 s); the worker's consumer reconnects per broker_connection_max_retries.
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.1,
            "interval_max": 0.2,
        }
        if settings.REDIS_KEY_PREFIX:
            # Several deployments (or test runs) can share one Redis without seeing each other.
            transport_options["global_keyprefix"] = settings.REDIS_KEY_PREFIX
    # The embedded SQLite broker (kombu's SQLAlchemy transport) hands every transport option
    # it does not know to create_engine(), so it gets none.
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport_options,
        # Keep retrying the broker at start-up instead of crashing (Celery 6 default).
        "broker_connection_retry_on_startup": True,
        # JSON only: no pickle, so a message can never execute code on the worker.
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        # State lives in PostgreSQL (deliveries, jobs); no result backend to run or expire.
        "task_ignore_result": True,
        # Acknowledge after the task finished, and requeue if the worker process died, so a
        # SIGKILL or OOM never loses a message (tasks are idempotent for this).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One message at a time per process: a slow task cannot hoard others behind it.
        "worker_prefetch_multiplier": 1,
        # On losing the broker connection, stop long tasks whose ack can no longer be sent.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # A stuck task gets SoftTimeLimitExceeded first (to record its state), then is killed.
        "task_soft_time_limit": settings.CELERY_TASK_SOFT_TIME_LIMIT_SECONDS,
        "task_time_limit": settings.CELERY_TASK_TIME_LIMIT_SECONDS,
        # Separate queues so a long job can never starve notifications or event dispatch.
        "task_queues": [Queue(name) for name in QUEUES],  # type: ignore[no-untyped-call]
        "task_default_queue": "events",
        "task_routes": {
            "events.*": {"queue": "events"},
            "notifications.*": {"queue": "notifications"},
            "webhooks.*": {"queue": "notifications"},
            "jobs.*": {"queue": "jobs"},
            "maintenance.*": {"queue": "events"},
        },
        # Our JSON logging stays in charge of the root logger.
        "worker_hijack_root_logger": False,
        # Remote control (celery inspect/control, Flower) listens on a Redis pub/sub channel;
        # with it on, Celery 5.7 / kombu 5.7 crash the worker when Redis drops the connection
        # while a message is unacknowledged (AttributeError in restore_unacked). Off by default:
        # a worker must ride out a Redis restart.
        "worker_enable_remote_control": settings.CELERY_REMOTE_CONTROL_ENABLED,
        "worker_redirect_stdouts": False,
        "beat_schedule": beat_schedule(settings),
    }


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """Periodic work; each entry expires after its interval so a backlog cannot pile up."""

    def every(task: str, seconds: float) -> dict[str, Any]:
        return {"task": task, "schedule": seconds, "options": {"expires": seconds}}

    return {
        "outbox-sweep": every("events.sweep_outbox", settings.OUTBOX_SWEEP_INTERVAL_SECONDS),
        "webhook-delivery-sweep": every(
            "webhooks.sweep_due_deliveries", settings.DELIVERY_SWEEP_INTERVAL_SECONDS
        ),
        "webhook-delivery-purge": every(
            "webhooks.purge_old_deliveries", settings.CLEANUP_INTERVAL_SECONDS
        ),
        "email-sweep": every(
            "notifications.sweep_due_emails", settings.DELIVERY_SWEEP_INTERVAL_SECONDS
        ),
        "task-due-reminders": every(
            "tasks.send_due_reminders", settings.TASK_REMINDER_INTERVAL_SECONDS
        ),
        "cleanup": every("maintenance.cleanup", settings.CLEANUP_INTERVAL_SECONDS),
        "job-sweep": every("jobs.sweep_stale", settings.JOB_SWEEP_INTERVAL_SECONDS),
        "job-file-purge": every("jobs.purge_files", settings.CLEANUP_INTERVAL_SECONDS),
        "idempotency-key-purge": every(
            "maintenance.purge_idempotency_keys", settings.CLEANUP_INTERVAL_SECONDS
        ),
    }


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    """Create the Celery app whose tasks run inside ``app``'s context."""

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            request_id = getattr(self.request, REQUEST_ID_HEADER, None)
            if request_id is None and isinstance(self.request.headers, dict):
                request_id = self.request.headers.get(REQUEST_ID_HEADER)
            previous = current_request_id()
            set_request_id(request_id or self.request.id)
            try:
                with app.app_context():
                    return self.run(*args, **kwargs)
            finally:
                set_request_id(previous)

    repair_redis_acknowledgements()  # or a Redis restart can leave the worker idle for good
    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(celery_config(settings))
    celery.set_default()
    celery.flask_app = app
    app.extensions["celery"] = celery
    celery.autodiscover_tasks(BACKGROUND_PACKAGES, related_name="background", force=True)
    return celery


@worker_init.connect
def _freeze_before_fork(**_kwargs: Any) -> None:
    """In the worker's main process, before the pool forks: move every object built so far (the
    app, its modules) to the collector's permanent generation.

    A collection in a prefork child writes to the header of every object it scans, and each
    write copies a page the child shared with the main process; frozen objects are never
    scanned, so those pages stay shared (gc.freeze's documented use before fork()).
    """
    gc.collect()
    gc.freeze()


@worker_process_init.connect
def _dispose_inherited_connections(**_kwargs: Any) -> None:
    """A prefork child must not reuse the parent's pooled connections (shared sockets)."""
    from celery import current_app as current_celery

    flask_app = getattr(current_celery, "flask_app", None)
    if flask_app is not None:
        with flask_app.app_context():
            db.dispose_after_fork()


@task_postrun.connect
def _drop_failed_task_tracebacks(
    retval: Any = None, state: str | None = None, **_kwargs: Any
) -> None:
    """Detach the tracebacks of a failed task's exception chain once Celery has reported it.

    Each traceback holds the frames of the failure, whose locals hold the exception again: a
    reference cycle, which only the rarely run full collection frees. A worker child grew by
    about 0.5 MiB per failed task (a burst of failures while PostgreSQL restarted added 90 MiB
    for good; found by the soak). Without the tracebacks, reference counting frees it all.
    """
    if state not in FAILED_STATES or not isinstance(retval, BaseException):
        return
    pending: list[BaseException] = [retval]
    seen: set[int] = set()
    while pending:
        exception = pending.pop()
        if id(exception) in seen:
            continue
        seen.add(id(exception))
        exception.__traceback__ = None
        pending += [e for e in (exception.__cause__, exception.__context__) if e is not None]


@before_task_publish.connect
def _carry_request_id(headers: dict[str, Any] | None = None, **_kwargs: Any) -> None:
    """Put the current request id in every published task's headers."""
    if headers is not None and not headers.get(REQUEST_ID_HEADER):
        request_id = current_request_id()
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
