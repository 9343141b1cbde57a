"""Event consumers of the users feature: the emails an account receives.

Each consumer only writes rows (the email to send, a reset token) in the dispatcher's session;
the dispatcher commits them with its "consumed" marker, then enqueues ``notifications.send_email``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import current_settings
from app.events.models import OutboxEvent
from app.events.registry import FollowUp, consumer
from app.events.service import USER_PASSWORD_RESET_REQUESTED, USER_REGISTERED, WEBHOOK_DISABLED
from app.notifications.service import queue_email, send_follow_ups
from app.users.models import User
from app.users.reset_service import (
    MAX_LIVE_RESET_TOKENS,
    issue_reset_token,
    live_reset_tokens,
)

logger = logging.getLogger(__name__)


def _active_user(session: Session, user_id: Any) -> User | None:
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        return None
    user = session.get(User, user_id)
    return user if user is not None and user.is_active else None


@consumer("users.welcome_email", [USER_REGISTERED])
def welcome_email(session: Session, event: OutboxEvent) -> list[FollowUp]:
    """Queue the welcome email of a new account."""
    user = _active_user(session, event.payload.get("user_id"))
    if user is None:
        return []
    message = queue_email(
        session,
        to=user.email,
        template="welcome",
        context={"full_name": user.full_name, "email": user.email},
        dedupe_key=f"welcome:{event.id}",
    )
    return send_follow_ups([message])


@consumer("users.password_reset_email", [USER_PASSWORD_RESET_REQUESTED])
def password_reset_email(session: Session, event: OutboxEvent) -> list[FollowUp]:
    """Issue a reset token and queue its email, only if an active account has the email."""
    email = event.payload.get("email")
    user = session.scalar(select(User).where(User.email == email)) if email else None
    if user is None or not user.is_active:
        return []
    if live_reset_tokens(session, user_id=user.id) >= MAX_LIVE_RESET_TOKENS:
        logger.info("password reset not sent: too many live tokens", extra={"user_id": user.id})
        return []
    ttl = timedelta(seconds=current_settings().PASSWORD_RESET_TTL_SECONDS)
    token_row, token = issue_reset_token(session, user=user, ttl=ttl)
    message = queue_email(
        session,
        to=user.email,
        template="password_reset",
        context={"full_name": user.full_name, "expires_minutes": int(ttl.total_seconds() // 60)},
        # The plain token lives only in the email; see app.notifications.sealing for why the
        # queued email holds it encrypted until it is sent.
        sealed_context={"token": token},
        dedupe_key=f"password-reset:{token_row.id}",
    )
    return send_follow_ups([message])


@consumer("users.webhook_disabled_email", [WEBHOOK_DISABLED])
def webhook_disabled_email(session: Session, event: OutboxEvent) -> list[FollowUp]:
    """Tell a webhook's owner that the circuit breaker disabled it."""
    owner = _active_user(session, event.payload.get("owner_id"))
    if owner is None:
        return []
    message = queue_email(
        session,
        to=owner.email,
        template="webhook_disabled",
        context={
            "full_name": owner.full_name,
            "webhook_id": str(event.payload.get("webhook_id", "")),
            "url": event.payload.get("url"),
            "reason": event.payload.get("reason"),
        },
        dedupe_key=f"webhook-disabled:{event.id}",
    )
    return send_follow_ups([message])
