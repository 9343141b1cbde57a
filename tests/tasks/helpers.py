"""Helpers of the task tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.events.models import OutboxEvent


def task_events(session: Session) -> list[tuple[str, dict[str, Any]]]:
    """``(name, payload)`` of every ``task.*`` event in the outbox, oldest first."""
    rows = session.execute(
        select(OutboxEvent.name, OutboxEvent.payload)
        .where(OutboxEvent.name.like("task.%"))
        .order_by(OutboxEvent.created_at)
    ).all()
    return [(row.name, row.payload) for row in rows]


def event_names(session: Session) -> list[str]:
    """The names of the ``task.*`` events, sorted (events of one transaction may share a time)."""
    return sorted(name for name, _payload in task_events(session))
