"""The retention settings move the clean-up's line: rows are kept exactly as long as they say."""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask import current_app
from sqlalchemy.orm import Session

from app.config import Settings
from app.core.database import utcnow
from app.events.models import OutboxEvent
from app.maintenance.service import cleanup
from app.notifications.models import EmailMessage, EmailState
from app.users.models import AuthSession, User

DAY = timedelta(days=1)
KINDS = ("auth_sessions", "email_messages", "outbox_events")


def retention(days: int) -> Settings:
    """The app's settings with every retention of the three kinds set to ``days``."""
    current: Settings = current_app.extensions["settings"]
    return current.model_copy(
        update={
            "AUTH_SESSION_RETENTION_DAYS": days,
            "EMAIL_RETENTION_DAYS": days,
            "OUTBOX_RETENTION_DAYS": days,
        }
    )


def test_rows_are_kept_for_the_retention_set_and_purged_after_it(
    db_session: Session, user: User
) -> None:
    now = utcnow()
    ended = now - 40 * DAY  # expired, sent and published 40 days ago
    db_session.add_all(
        [
            AuthSession(user_id=user.id, expires_at=ended),
            EmailMessage(
                to_address="ada@example.com",
                template="welcome",
                subject="Welcome",
                context={},
                dedupe_key=f"test:{uuid.uuid4()}",
                state=EmailState.SUCCEEDED.value,
                created_at=ended,
            ),
            OutboxEvent(
                name="user.registered", payload={}, published_at=ended, dispatched_at=ended
            ),
        ]
    )
    db_session.commit()

    kept = cleanup(db_session, settings=retention(41), now=now)
    purged = cleanup(db_session, settings=retention(39), now=now)

    assert {kind: kept[kind] for kind in KINDS} == dict.fromkeys(KINDS, 0)
    assert {kind: purged[kind] for kind in KINDS} == dict.fromkeys(KINDS, 1)
