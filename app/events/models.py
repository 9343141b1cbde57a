"""The outbox table: one row per domain event, written with the change that caused it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, utcnow


class OutboxEvent(Base):
    """A domain event waiting to be (or already) published to its consumers."""

    __tablename__ = "outbox_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    request_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    # Set once every consumer has handled the event; until then the sweep republishes it, so
    # a message lost with a killed worker or a restarted Redis is redone within minutes
    # instead of waiting for the broker's visibility timeout (or forever, if Redis lost it).
    dispatched_at: Mapped[datetime | None]
    publish_attempts: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # The relay only ever looks for unpublished rows; keep that index tiny.
        Index(
            "ix_outbox_events_unpublished",
            "created_at",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
        # Clean-up deletes dispatched rows by age; this keeps it from scanning the table.
        Index(
            "ix_outbox_events_dispatched",
            "dispatched_at",
            postgresql_where=text("dispatched_at IS NOT NULL"),
            sqlite_where=text("dispatched_at IS NOT NULL"),
        ),
        # The sweep looks for published rows no consumer run has confirmed.
        Index(
            "ix_outbox_events_undispatched",
            "published_at",
            postgresql_where=text("published_at IS NOT NULL AND dispatched_at IS NULL"),
            sqlite_where=text("published_at IS NOT NULL AND dispatched_at IS NULL"),
        ),
    )


class ConsumedEvent(Base):
    """Marks that ``consumer`` has handled event ``event_id``: redeliveries become no-ops."""

    __tablename__ = "consumed_events"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    consumed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
