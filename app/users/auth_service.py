"""Authentication: register, log in, rotate refresh tokens, log out, resolve access tokens.

A login opens an ``AuthSession``: the family of every refresh token rotated from it. Each refresh
token works once; presenting one that was already rotated means it leaked (or a client misbehaves),
so the whole family is revoked and both holders must log in again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.auth import Principal
from app.core.database import utcnow
from app.core.errors import Conflict, Unauthorized, ValidationFailed
from app.core.security import InvalidToken, TokenClaims, password_hashing, token_codec
from app.events.service import USER_REGISTERED, record
from app.users.models import AuthSession, RefreshToken, User

INVALID_CREDENTIALS = "The email or password is incorrect."
INVALID_REFRESH_TOKEN = "The refresh token is invalid, expired or revoked."
EMAIL_TAKEN = "A user with this email already exists."


@dataclass(frozen=True)
class TokenPair:
    """What a login or a refresh hands the client."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


def normalize_email(email: str) -> str:
    """The stored form of ``email``: trimmed and lower-cased, so uniqueness ignores case."""
    return email.strip().lower()


def email_taken(session: Session, email: str, *, except_user_id: int | None = None) -> bool:
    """True when another user already has ``email`` (already normalised)."""
    query = select(User.id).where(User.email == email)
    if except_user_id is not None:
        query = query.where(User.id != except_user_id)
    return session.scalar(query.limit(1)) is not None


@contextmanager
def unique_email(session: Session) -> Iterator[None]:
    """Flush the changes made inside in a SAVEPOINT; a duplicate email there becomes a 409.

    The pre-check in ``email_taken`` can miss a concurrent insert; the unique constraint cannot.
    Only the SAVEPOINT is rolled back, so the caller's transaction stays usable.
    """
    try:
        with session.begin_nested():
            yield
    except IntegrityError as exc:
        # PostgreSQL names the constraint; SQLite names the column.
        if any(name in str(exc.orig) for name in ("uq_users_email", "users.email")):
            raise Conflict(EMAIL_TAKEN) from None
        raise


def new_user(
    session: Session,
    *,
    email: str,
    password: str,
    full_name: str | None = None,
    role: str = "user",
) -> User:
    """Add a user with a hashed password and record ``user.registered`` (no commit)."""
    email = normalize_email(email)
    if email_taken(session, email):
        raise Conflict(EMAIL_TAKEN)
    user = User(
        email=email,
        password_hash=password_hashing().hash(password),
        full_name=full_name,
        role=role,
        is_active=True,
    )
    with unique_email(session):
        session.add(user)
    record(session, USER_REGISTERED, {"user_id": user.id})
    return user


def register(*, session: Session, email: str, password: str, full_name: str | None = None) -> User:
    """Create a regular user; 409 when the email (in any case) is taken."""
    user = new_user(session, email=email, password=password, full_name=full_name)
    session.commit()
    return user


def login(*, session: Session, email: str, password: str) -> TokenPair:
    """Check the credentials, open a login session and issue its first token pair."""
    hashing = password_hashing()
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    # Verify even for an unknown email, so response time does not reveal which emails exist.
    valid = hashing.verify(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        raise Unauthorized(INVALID_CREDENTIALS)
    if hashing.needs_rehash(user.password_hash):
        user.password_hash = hashing.hash(password)
    now = utcnow()
    auth_session = AuthSession(id=uuid.uuid4(), user_id=user.id, created_at=now, last_used_at=now)
    session.add(auth_session)
    pair = _issue_pair(session, auth_session, now=now)
    session.commit()
    return pair


def refresh(*, session: Session, refresh_token: str) -> TokenPair:
    """Rotate ``refresh_token``: mark it used and issue a new pair in the same family.

    A token presented twice revokes its family (reason ``reuse``); the revocation is committed
    before the 401 is raised, so the thief's freshly rotated token dies too.
    """
    try:
        claims = token_codec().decode(refresh_token, expected_type="refresh")
    except InvalidToken:
        raise Unauthorized(INVALID_REFRESH_TOKEN) from None
    # Locked so two concurrent uses of one token cannot both succeed: the second waits, then
    # sees it used.
    stored = session.scalar(
        select(RefreshToken).where(RefreshToken.jti == claims.token_id).with_for_update()
    )
    if stored is None or stored.session_id != claims.session_id:
        raise Unauthorized(INVALID_REFRESH_TOKEN)
    auth_session = session.scalar(
        select(AuthSession).where(AuthSession.id == stored.session_id).with_for_update()
    )
    now = utcnow()
    if (
        auth_session is None
        or auth_session.user_id != claims.subject
        or auth_session.revoked_at is not None
        or auth_session.expires_at <= now
        or stored.expires_at <= now
    ):
        raise Unauthorized(INVALID_REFRESH_TOKEN)
    if stored.used_at is not None:
        _revoke(auth_session, reason="reuse", now=now)
        session.commit()
        raise Unauthorized(INVALID_REFRESH_TOKEN)
    user = session.get(User, auth_session.user_id)
    if user is None or not user.is_active:
        raise Unauthorized(INVALID_REFRESH_TOKEN)
    stored.used_at = now
    auth_session.last_used_at = now
    pair = _issue_pair(session, auth_session, now=now)
    session.commit()
    return pair


def logout(*, session: Session, session_id: uuid.UUID) -> None:
    """Revoke the login session ``session_id``: its access and refresh tokens stop at once."""
    auth_session = session.get(AuthSession, session_id, with_for_update=True)
    if auth_session is not None and auth_session.revoked_at is None:
        _revoke(auth_session, reason="logout", now=utcnow())
    session.commit()


def revoke_user_sessions(
    session: Session, *, user_id: int, reason: str, except_session_id: uuid.UUID | None = None
) -> int:
    """Revoke every live session of ``user_id`` but ``except_session_id`` (no commit)."""
    statement = (
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )
    if except_session_id is not None:
        statement = statement.where(AuthSession.id != except_session_id)
    return session.execute(statement).rowcount  # type: ignore[attr-defined, no-any-return]


def check_current_password(user: User, current_password: str) -> None:
    """Raise a 422 on ``current_password`` unless it is the user's password.

    422 rather than 401 (the caller is authenticated; clients drop their tokens on 401) or 403
    (that means the role lacks the right): it is a wrong value in one field of the body.
    """
    if not password_hashing().verify(user.password_hash, current_password):
        raise ValidationFailed(
            "The current password is incorrect.",
            errors={"json": {"current_password": ["Incorrect password."]}},
        )


def change_password(
    session: Session, *, user: User, new_password: str, keep_session_id: uuid.UUID | None
) -> None:
    """Set a new password and revoke every other session of the user (no commit)."""
    user.password_hash = password_hashing().hash(new_password)
    user.password_changed_at = utcnow()
    revoke_user_sessions(
        session, user_id=user.id, reason="password_change", except_session_id=keep_session_id
    )


# Built once (every authenticated request runs it): building it cost twice what running it does.
_PRINCIPAL = (
    select(User.id, User.role, User.is_active, AuthSession.revoked_at, AuthSession.expires_at)
    .join(AuthSession, AuthSession.user_id == User.id)
    .where(User.id == bindparam("user_id"), AuthSession.id == bindparam("session_id"))
)


def resolve_principal(*, session: Session, claims: TokenClaims) -> Principal:
    """The principal of verified access-token ``claims``, if its user and login session live.

    One query per request: a deactivated or deleted user, or a revoked session (logout, password
    change, refresh-token reuse), stops working at once rather than when the token expires.
    """
    row = session.execute(
        _PRINCIPAL, {"user_id": claims.subject, "session_id": claims.session_id}
    ).one_or_none()
    if row is None or not row.is_active or row.revoked_at is not None or row.expires_at <= utcnow():
        raise Unauthorized("The access token has been revoked.")
    return Principal(user_id=row.id, role=row.role, session_id=claims.session_id)


def _revoke(auth_session: AuthSession, *, reason: str, now: datetime) -> None:
    auth_session.revoked_at = now
    auth_session.revoked_reason = reason


def _issue_pair(session: Session, auth_session: AuthSession, *, now: datetime) -> TokenPair:
    """Sign an access and a refresh token for ``auth_session``; store the refresh token's id.

    The session expires with its newest refresh token: a login lives until it goes unused for
    the refresh-token lifetime.
    """
    codec = token_codec()
    access = codec.encode(
        subject=auth_session.user_id, token_type="access", session_id=auth_session.id, now=now
    )
    refreshing = codec.encode(
        subject=auth_session.user_id, token_type="refresh", session_id=auth_session.id, now=now
    )
    auth_session.expires_at = refreshing.expires_at
    session.add(
        RefreshToken(
            jti=refreshing.token_id,
            session_id=auth_session.id,
            created_at=now,
            expires_at=refreshing.expires_at,
        )
    )
    return TokenPair(
        access_token=access.token,
        refresh_token=refreshing.token,
        expires_in=int(codec.access_ttl.total_seconds()),
    )
