"""The periodic clean-up deletes exactly what has expired, in bounded batches."""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.core.database import utcnow
from app.events.models import ConsumedEvent, OutboxEvent
from app.maintenance import background
from app.maintenance.service import cleanup
from app.notifications.models import EmailMessage, EmailState
from app.users.models import AuthSession, PasswordResetToken, RefreshToken, User


def settings(**changes: object) -> Settings:
    current: Settings = current_app.extensions["settings"]
    return current.model_copy(update=changes)


def count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def email(session: Session, *, state: EmailState, age: timedelta) -> EmailMessage:
    message = EmailMessage(
        to_address="ada@example.com",
        template="welcome",
        subject="Welcome",
        context={},
        dedupe_key=f"test:{uuid.uuid4()}",
        state=state.value,
        created_at=utcnow() - age,
    )
    session.add(message)
    return message


def test_cleanup_deletes_only_what_expired(db_session: Session, user: User) -> None:
    now = utcnow()
    day = timedelta(days=1)
    live = AuthSession(user_id=user.id, expires_at=now + day)
    recently_expired = AuthSession(user_id=user.id, expires_at=now - day)
    long_expired = AuthSession(user_id=user.id, expires_at=now - 30 * day)
    db_session.add_all([live, recently_expired, long_expired])
    db_session.flush()
    db_session.add_all(
        [
            RefreshToken(jti="live", session_id=live.id, expires_at=now + day),
            RefreshToken(jti="expired", session_id=recently_expired.id, expires_at=now - day),
            RefreshToken(jti="cascaded", session_id=long_expired.id, expires_at=now + day),
            PasswordResetToken(user_id=user.id, token_hash="a" * 64, expires_at=now + day),
            PasswordResetToken(user_id=user.id, token_hash="b" * 64, expires_at=now - day),
        ]
    )
    kept_emails = [
        email(db_session, state=EmailState.SUCCEEDED, age=day),
        email(db_session, state=EmailState.PENDING, age=90 * day),  # never dropped unsent
    ]
    for state in (EmailState.SUCCEEDED, EmailState.FAILED, EmailState.DEAD):
        email(db_session, state=state, age=90 * day)
    fresh_event = OutboxEvent(
        name="user.registered", payload={}, published_at=now, dispatched_at=now
    )
    unpublished = OutboxEvent(name="user.registered", payload={}, created_at=now - 30 * day)
    old_event = OutboxEvent(
        name="user.registered",
        payload={},
        published_at=now - 30 * day,
        dispatched_at=now - 30 * day,
    )
    db_session.add_all([fresh_event, unpublished, old_event])
    db_session.flush()
    db_session.add_all(
        [
            ConsumedEvent(event_id=fresh_event.id, consumer="a", consumed_at=now),
            ConsumedEvent(event_id=old_event.id, consumer="a", consumed_at=now - 30 * day),
            ConsumedEvent(event_id=old_event.id, consumer="b", consumed_at=now - 30 * day),
        ]
    )
    db_session.commit()

    deleted = cleanup(db_session, settings=settings(CLEANUP_BATCH=2), now=now)

    assert deleted == {
        "refresh_tokens": 1,
        "auth_sessions": 1,
        "password_reset_tokens": 1,
        "email_messages": 3,
        "consumed_events": 2,
        "outbox_events": 1,
    }
    db_session.expire_all()
    assert set(db_session.scalars(select(AuthSession.id))) == {live.id, recently_expired.id}
    assert set(db_session.scalars(select(RefreshToken.jti))) == {"live"}
    assert set(db_session.scalars(select(PasswordResetToken.token_hash))) == {"a" * 64}
    assert set(db_session.scalars(select(EmailMessage.id))) == {item.id for item in kept_emails}
    assert set(db_session.scalars(select(OutboxEvent.id))) == {fresh_event.id, unpublished.id}
    assert count(db_session, ConsumedEvent) == 1

    assert set(cleanup(db_session, settings=settings(), now=now).values()) == {0}


def test_the_beat_task_runs_the_cleanup(db_session: Session, user: User) -> None:
    db_session.add(
        PasswordResetToken(
            user_id=user.id, token_hash="c" * 64, expires_at=utcnow() - timedelta(minutes=1)
        )
    )
    db_session.commit()
    assert background.cleanup.run()["password_reset_tokens"] == 1
    assert count(db_session, PasswordResetToken) == 0
