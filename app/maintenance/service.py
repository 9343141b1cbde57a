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

from sqlalchemy import select
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
    return {
        "refresh_tokens": delete_in_batches(
            session,
            model=RefreshToken,
            chosen=select(RefreshToken.jti).where(RefreshToken.expires_at < now),
            batch=batch,
        ),
        "auth_sessions": delete_in_batches(
            session,
            model=AuthSession,
            chosen=select(AuthSession.id).where(AuthSession.expires_at < sessions_cutoff),
            batch=batch,
        ),
        "password_reset_tokens": delete_in_batches(
            session,
            model=PasswordResetToken,
            chosen=select(PasswordResetToken.id).where(PasswordResetToken.expires_at < now),
            batch=batch,
        ),
        "email_messages": delete_in_batches(
            session,
            model=EmailMessage,
            chosen=select(EmailMessage.id).where(
                EmailMessage.state != EmailState.PENDING.value,
                EmailMessage.created_at < emails_cutoff,
            ),
            batch=batch,
        ),
        "consumed_events": delete_in_batches(
            session,
            model=ConsumedEvent,
            chosen=select(ConsumedEvent.event_id, ConsumedEvent.consumer).where(
                ConsumedEvent.consumed_at < outbox_cutoff
            ),
            batch=batch,
        ),
        "outbox_events": delete_in_batches(
            session,
            model=OutboxEvent,
            chosen=select(OutboxEvent.id).where(
                OutboxEvent.dispatched_at.is_not(None),
                OutboxEvent.dispatched_at < outbox_cutoff,
            ),
            batch=batch,
        ),
    }
