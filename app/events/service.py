"""Recording domain events in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.core.requests import current_request_id
from app.events.models import OutboxEvent

# Every event name the service records; consumers register against these.
USER_REGISTERED = "user.registered"
USER_DELETED = "user.deleted"
# Carries only the normalised email: recorded whether or not an account has it.
USER_PASSWORD_RESET_REQUESTED = "user.password_reset_requested"
TASK_CREATED = "task.created"
TASK_UPDATED = "task.updated"
TASK_COMPLETED = "task.completed"
TASK_DELETED = "task.deleted"
WEBHOOK_DISABLED = "webhook.disabled"
JOB_CREATED = "job.created"
JOB_SUCCEEDED = "job.succeeded"
JOB_FAILED = "job.failed"
JOB_CANCELLED = "job.cancelled"
EVENT_NAMES = frozenset(
    {
        USER_REGISTERED,
        USER_DELETED,
        USER_PASSWORD_RESET_REQUESTED,
        TASK_CREATED,
        TASK_UPDATED,
        TASK_COMPLETED,
        TASK_DELETED,
        WEBHOOK_DISABLED,
        JOB_CREATED,
        JOB_SUCCEEDED,
        JOB_FAILED,
        JOB_CANCELLED,
    }
)


def record(session: Session, name: str, payload: dict[str, Any]) -> OutboxEvent:
    """Add event ``name`` to the outbox, committed or rolled back with the caller's change."""
    if name not in EVENT_NAMES:
        raise ValueError(f"unknown event name {name!r}")
    event = OutboxEvent(name=name, payload=payload, request_id=current_request_id())
    session.add(event)
    return event
