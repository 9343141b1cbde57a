"""Helpers of the identity tests: logging in through the API and forging tokens."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import jwt
from flask import current_app
from flask.testing import FlaskClient
from sqlalchemy import select

from app.core.database import utcnow
from app.extensions import db
from app.users.models import AuthSession, User
from tests.factories import DEFAULT_PASSWORD


def login(client: FlaskClient, user: User, password: str = DEFAULT_PASSWORD) -> dict[str, Any]:
    """Log ``user`` in through the API; the token pair."""
    response = client.post("/api/v1/auth/login", json={"email": user.email, "password": password})
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header carrying ``token``."""
    return {"Authorization": f"Bearer {token}"}


def live_session(user: User) -> AuthSession:
    """A live login session of ``user``, flushed to the database."""
    auth_session = AuthSession(user_id=user.id, expires_at=utcnow() + timedelta(days=1))
    db.session.add(auth_session)
    db.session.flush()
    return auth_session


def valid_claims(user: User, auth_session: AuthSession) -> dict[str, Any]:
    """Claims of a well-formed access token for ``user`` in ``auth_session``."""
    settings = current_app.extensions["settings"]
    now = utcnow()
    return {
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "sub": str(user.id),
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": uuid.uuid4().hex,
        "type": "access",
        "sid": str(auth_session.id),
    }


def sign(claims: dict[str, Any], key: str | None = None, algorithm: str = "HS256") -> str:
    """``claims`` signed with ``key`` (default: the app's signing key)."""
    return jwt.encode(claims, key or current_app.extensions["settings"].jwt_key, algorithm)


def sessions_of(user_id: int) -> list[AuthSession]:
    """Every login session of ``user_id``, oldest first."""
    return list(
        db.session.scalars(
            select(AuthSession)
            .where(AuthSession.user_id == user_id)
            .order_by(AuthSession.created_at, AuthSession.id)
            .execution_options(populate_existing=True)
        )
    )
