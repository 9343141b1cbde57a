"""Sending Celery tasks by name, with the request id in the message headers.

Web code never waits on a broker: ``retry=False`` plus short socket timeouts make a publish to a
dead Redis fail in milliseconds, and the caller leaves the work in the database for a sweep.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from flask import current_app

from app.core.requests import current_request_id

REQUEST_ID_HEADER = "request_id"


def celery_app() -> Celery:
    """The Celery app of the current Flask app."""
    celery: Celery = current_app.extensions["celery"]
    return celery


def send_task(
    name: str,
    args: tuple[Any, ...] | list[Any] = (),
    *,
    countdown: float | None = None,
    request_id: str | None = None,
) -> None:
    """Publish task ``name``; raises when the broker does not accept it."""
    celery_app().send_task(
        name,
        args=list(args),
        countdown=countdown,
        headers={REQUEST_ID_HEADER: request_id or current_request_id()},
        retry=False,
    )
