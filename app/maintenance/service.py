"""What the clean-up deletes, each kind in bounded batches so no statement runs long or locks much.

- refresh tokens past their expiry (an expired token is refused whether its row exists or not);
- login sessions expired for longer than AUTH_SESSION_RETENTION_DAYS (their tokens cascade);
- password-reset tokens past their expiry (used ones expire within the reset TTL anyway);
- finished emails (sent, failed, dead) older than EMAIL_RETENTION_DAYS;
- published outbox events and consumed-event markers older than OUTBOX_RETENTION_DAYS (long after
  any redelivery could arrive).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.core.queries import delete_in_batches
from app.events.models import ConsumedEvent, OutboxEvent
from app.notifications.models import EmailMessage, EmailState
from app.users.models import AuthSession, PasswordResetToken, RefreshToken


def cleanup(session: Session, *, settings: Settings, now: datetime) -> dict[str, int]:
    """Delete every kind of expired row; returns how many of each went."""
    batch = settings.CLEANUP_BATCH
    sessions_cutoff = now - timedelta(days=settings.AUTH_SESSION_RETENTION_DAYS)
    emails_cutoff = now - timedelta(days=settings.EMAIL_RETENTION_DAYS)
    outbox_cutoff = now - timedelta(days=settings.OUTBOX_RETENTION_DAYS)
    # Each kind: its model and the select of the keys of its expired rows, deleted in this order.
    expired: dict[str, tuple[type[Any], Select[*tuple[Any, ...]]]] = {
        "refresh_tokens": (
            RefreshToken,
            select(RefreshToken.jti).where(RefreshToken.expires_at < now),
        ),
        "auth_sessions": (
            AuthSession,
            select(AuthSession.id).where(AuthSession.expires_at < sessions_cutoff),
        ),
        "password_reset_tokens": (
            PasswordResetToken,
            select(PasswordResetToken.id).where(PasswordResetToken.expires_at < now),
        ),
        "email_messages": (
            EmailMessage,
            select(EmailMessage.id).where(
                EmailMessage.state != EmailState.PENDING.value,
                EmailMessage.created_at < emails_cutoff,
            ),
        ),
        "consumed_events": (
            ConsumedEvent,
            select(ConsumedEvent.event_id, ConsumedEvent.consumer).where(
                ConsumedEvent.consumed_at < outbox_cutoff
            ),
        ),
        "outbox_events": (
            OutboxEvent,
            select(OutboxEvent.id).where(
                OutboxEvent.dispatched_at.is_not(None),
                OutboxEvent.dispatched_at < outbox_cutoff,
            ),
        ),
    }
    return {
        kind: delete_in_batches(session, model=model, chosen=chosen, batch=batch)
        for kind, (model, chosen) in expired.items()
    }
