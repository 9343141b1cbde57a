"""Helpers of the job tests: jobs made through the service, a recording progress callback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import current_settings
from app.events.models import OutboxEvent
from app.jobs import service
from app.jobs.models import Job
from app.jobs.params import normalized_params
from app.users.models import User


def make_job(
    session: Session,
    owner: User,
    job_type: str = "tasks.export",
    params: dict[str, Any] | None = None,
    csv_text: str | None = None,
) -> Job:
    """A queued job created through the service (as the API does)."""
    upload = None
    if csv_text is not None:
        upload = service.Upload("tasks.csv", "text/csv", csv_text.encode())
    return service.create_job(
        session,
        owner_id=owner.id,
        job_type=job_type,
        params=normalized_params(job_type, params or {}),
        upload=upload,
    )


class Progress:
    """A fake ``progress`` callback that records what it was told."""

    def __init__(self) -> None:
        self.reports: list[int] = []

    def __call__(self, percent: int) -> None:
        self.reports.append(percent)


def events_named(session: Session, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """``(name, payload)`` of the outbox events whose name starts with ``prefix``."""
    rows = session.execute(
        select(OutboxEvent.name, OutboxEvent.payload)
        .where(OutboxEvent.name.startswith(prefix))
        .order_by(OutboxEvent.created_at)
    ).all()
    return [(row.name, row.payload) for row in rows]


@contextmanager
def settings_changed(
    monkeypatch: pytest.MonkeyPatch, modules: list[Any], **changes: Any
) -> Iterator[None]:
    """Let ``modules`` see the app's settings with ``changes`` (settings are frozen)."""
    changed = current_settings().model_copy(update=changes)
    with monkeypatch.context() as patch:
        for module in modules:
            patch.setattr(module, "current_settings", lambda: changed)
        yield
