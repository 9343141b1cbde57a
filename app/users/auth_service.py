"""Authentication: register, log in, rotate refresh tokens, log out, resolve access tokens."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.auth import Principal
from app.core.database import utcnow
from app.core.errors import Unauthorized
from app.core.security import TokenClaims
from app.users.models import AuthSession, User


def resolve_principal(*, session: Session, claims: TokenClaims) -> Principal:
    """The principal of verified access-token ``claims``, if its user and login session live.

    One query per request: a deactivated or deleted user, or a revoked session (logout, password
    change, refresh-token reuse), stops working at once rather than when the token expires.
    """
    row = session.execute(
        select(User.id, User.role, User.is_active, AuthSession.revoked_at, AuthSession.expires_at)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(User.id == claims.subject, AuthSession.id == claims.session_id)
    ).one_or_none()
    if row is None or not row.is_active or row.revoked_at is not None or row.expires_at <= utcnow():
        raise Unauthorized("The access token has been revoked.")
    return Principal(user_id=row.id, role=row.role, session_id=claims.session_id)
