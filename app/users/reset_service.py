"""Password reset by emailed token: request (always the same answer), issue, confirm.

The request only records an outbox event with the email, so it does the same work and gives the
same answer whether or not an account exists; the consumer (``users.background``) issues a token
only for an active account. The token is 32 random bytes; the database keeps its SHA-256 only.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.core.errors import BadRequest
from app.core.security import password_hashing
from app.events.service import USER_PASSWORD_RESET_REQUESTED, record
from app.users.auth_service import normalize_email, revoke_user_sessions
from app.users.models import PasswordResetToken, User

RESET_TOKEN_BYTES = 32
# Live (unused, unexpired) tokens an account may have: beyond it, requests send no more email,
# so nobody can flood a victim's mailbox, whatever the request rate limit lets through.
MAX_LIVE_RESET_TOKENS = 3
INVALID_RESET_TOKEN = "The reset token is invalid, expired or already used."
INVALID_RESET_TOKEN_CODE = "invalid_token"


def hash_reset_token(token: str) -> str:
    """The stored form of a reset token: its hex SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def request_password_reset(*, session: Session, email: str) -> None:
    """Ask for a reset email to ``email``; the same work whether or not the account exists."""
    record(session, USER_PASSWORD_RESET_REQUESTED, {"email": normalize_email(email)})
    session.commit()


def live_reset_tokens(session: Session, *, user_id: int) -> int:
    """How many unused, unexpired reset tokens ``user_id`` has."""
    query = select(func.count()).where(
        PasswordResetToken.user_id == user_id,
        PasswordResetToken.used_at.is_(None),
        PasswordResetToken.expires_at > utcnow(),
    )
    return int(session.scalar(query) or 0)


def issue_reset_token(
    session: Session, *, user: User, ttl: timedelta
) -> tuple[PasswordResetToken, str]:
    """Add a reset token for ``user`` (no commit); returns the row and the only plain copy."""
    token = secrets.token_urlsafe(RESET_TOKEN_BYTES)
    now = utcnow()
    row = PasswordResetToken(
        user_id=user.id, token_hash=hash_reset_token(token), created_at=now, expires_at=now + ttl
    )
    session.add(row)
    session.flush()
    return row, token


def confirm_password_reset(*, session: Session, token: str, new_password: str) -> None:
    """Set ``new_password`` with reset ``token`` and revoke every session of the account.

    One message (400 ``invalid_token``) for an unknown, expired or used token. The token row is
    locked, so two concurrent uses cannot both succeed; marking it used commits with the new
    password. The user's other outstanding tokens die too: the password they were for is gone.
    """
    now = utcnow()
    row = session.scalar(
        select(PasswordResetToken)
        .where(PasswordResetToken.token_hash == hash_reset_token(token))
        .with_for_update()
    )
    user = session.get(User, row.user_id, with_for_update=True) if row is not None else None
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise BadRequest(INVALID_RESET_TOKEN, code=INVALID_RESET_TOKEN_CODE)
    if user is None or not user.is_active:
        raise BadRequest(INVALID_RESET_TOKEN, code=INVALID_RESET_TOKEN_CODE)
    user.password_hash = password_hashing().hash(new_password)
    user.password_changed_at = now
    session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now)
    )
    revoke_user_sessions(session, user_id=user.id, reason="password_reset")
    session.commit()
