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

from sqlalchemy import ColumnElement, delete, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.config import Settings
from app.events.models import ConsumedEvent, OutboxEvent
from app.notifications.models import EmailMessage, EmailState
from app.users.models import AuthSession, PasswordResetToken, RefreshToken

# Bounds one run: at most this many batches of CLEANUP_BATCH rows per kind.
MAX_BATCHES_PER_KIND = 100


def delete_in_batches(
    session: Session,
    model: type[Any],
    key: tuple[InstrumentedAttribute[Any], ...],
    condition: ColumnElement[bool],
    *,
    batch: int,
) -> int:
    """Delete rows of ``model`` matching ``condition``, ``batch`` per committed statement."""
    total = 0
    for _ in range(MAX_BATCHES_PER_KIND):
        chosen = select(*key).where(condition).limit(batch)
        target = key[0] if len(key) == 1 else tuple_(*key)
        result = session.execute(
            delete(model).where(target.in_(chosen)),
            execution_options={"synchronize_session": False},
        )
        session.commit()
        deleted = int(getattr(result, "rowcount", 0) or 0)
        total += deleted
        if deleted < batch:
            break
    return total


def cleanup(session: Session, *, settings: Settings, now: datetime) -> dict[str, int]:
    """Delete every kind of expired row; returns how many of each went."""
    batch = settings.CLEANUP_BATCH
    sessions_cutoff = now - timedelta(days=settings.AUTH_SESSION_RETENTION_DAYS)
    emails_cutoff = now - timedelta(days=settings.EMAIL_RETENTION_DAYS)
    outbox_cutoff = now - timedelta(days=settings.OUTBOX_RETENTION_DAYS)
    return {
        "refresh_tokens": delete_in_batches(
            session, RefreshToken, (RefreshToken.jti,), RefreshToken.expires_at < now, batch=batch
        ),
        "auth_sessions": delete_in_batches(
            session,
            AuthSession,
            (AuthSession.id,),
            AuthSession.expires_at < sessions_cutoff,
            batch=batch,
        ),
        "password_reset_tokens": delete_in_batches(
            session,
            PasswordResetToken,
            (PasswordResetToken.id,),
            PasswordResetToken.expires_at < now,
            batch=batch,
        ),
        "email_messages": delete_in_batches(
            session,
            EmailMessage,
            (EmailMessage.id,),
            (EmailMessage.state != EmailState.PENDING.value)
            & (EmailMessage.created_at < emails_cutoff),
            batch=batch,
        ),
        "consumed_events": delete_in_batches(
            session,
            ConsumedEvent,
            (ConsumedEvent.event_id, ConsumedEvent.consumer),
            ConsumedEvent.consumed_at < outbox_cutoff,
            batch=batch,
        ),
        "outbox_events": delete_in_batches(
            session,
            OutboxEvent,
            (OutboxEvent.id,),
            OutboxEvent.dispatched_at.is_not(None) & (OutboxEvent.dispatched_at < outbox_cutoff),
            batch=batch,
        ),
    }
