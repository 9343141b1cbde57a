"""The email outbox: one row per email, its state and its delivery attempts."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, JSONType, utcnow


class EmailState(enum.StrEnum):
    """Where an email stands; only ``pending`` emails are ever (re)tried."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a permanent failure (a 5xx reply, an invalid address): not retried
    DEAD = "dead"  # transient failures until the attempts ran out


class EmailMessage(Base):
    """An email to send; ``dedupe_key`` makes queueing the same email twice a no-op."""

    __tablename__ = "email_messages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    to_address: Mapped[str] = mapped_column(String(254))
    template: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    # What the template needs, rendered when the email is sent. Never a secret: see
    # ``sealed_context``.
    context: Mapped[dict[str, Any]]
    # Values that must not be readable in the database (a password-reset token), Fernet-encrypted
    # and erased as soon as the email is finished.
    sealed_context: Mapped[str | None] = mapped_column(Text)
    # For example "welcome:<event id>" or "reminder:<task id>:<due_at>".
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(16), default=EmailState.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set while a worker holds the email; an expired lease means that worker died.
    lease_until: Mapped[datetime | None]
    # Seconds waited before each retry, in order (the backoff schedule actually used).
    delays: Mapped[list[float]] = mapped_column(JSONType, default=list)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint("state IN ('pending', 'succeeded', 'failed', 'dead')", name="state"),
        # The sweep only looks at pending rows; finished ones would bloat the index forever.
        Index(
            "ix_email_messages_due",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        # The clean-up deletes old finished rows in batches.
        Index(
            "ix_email_messages_finished",
            "created_at",
            postgresql_where=text("state <> 'pending'"),
            sqlite_where=text("state <> 'pending'"),
        ),
    )
