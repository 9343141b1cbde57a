"""Webhook endpoints and their deliveries (one row per endpoint and event: the source of truth)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, IdType, JSONType, utcnow


class DeliveryState(enum.StrEnum):
    """Where a delivery stands; only ``pending`` ones are ever attempted."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # permanent failure: not retried
    DEAD = "dead"  # transient failures until the attempts ran out


class Webhook(Base):
    """An HTTP endpoint of one user, subscribed to some event names."""

    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]]
    description: Mapped[str | None] = mapped_column(String(500))
    # The signing secret, Fernet-encrypted: a database dump alone cannot forge deliveries.
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    # Start of the current streak of failed attempts (the circuit breaker); None after a success.
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint, with its attempts; retried until it succeeds or gives up."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    # No foreign key: the outbox is purged long before a delivery's history is.
    event_id: Mapped[uuid.UUID]
    event_name: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    event_created_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    # Seconds waited before each retry, in order (what the backoff actually chose).
    delays: Mapped[list[float]] = mapped_column(JSONType, default=list)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(300))
    last_attempt_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    # A worker owns the attempt until lease_until; the token makes a late outcome of a stale
    # attempt (lease expired, or the delivery was replayed meanwhile) harmless.
    lease_until: Mapped[datetime | None]
    lease_token: Mapped[uuid.UUID | None]
    # A task message is believed to be queued for it until then; the sweep leaves it alone.
    queued_until: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        # One delivery per endpoint and event: a redelivered event cannot be sent twice.
        UniqueConstraint("webhook_id", "event_id"),
        CheckConstraint("state IN ('pending', 'succeeded', 'failed', 'dead')", name="state"),
        Index("ix_webhook_deliveries_webhook_created", "webhook_id", "created_at", "id"),
        # The sweep only looks at pending rows; keep that index small.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index("ix_webhook_deliveries_created", "created_at"),
    )
