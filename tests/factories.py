"""Test data factories (factory_boy) and token helpers."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import factory

from app.core.auth import Principal
from app.core.database import utcnow
from app.core.security import password_hashing, token_codec
from app.extensions import db
from app.users.models import AuthSession, User

DEFAULT_PASSWORD = "correct horse battery staple"


class UserFactory(factory.alchemy.SQLAlchemyModelFactory):  # type: ignore[misc]
    """A user whose password is ``DEFAULT_PASSWORD``."""

    class Meta:
        model = User
        sqlalchemy_session = db.session
        sqlalchemy_session_persistence = "flush"

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name")
    role = "user"
    is_active = True
    password_hash = factory.LazyFunction(lambda: password_hashing().hash(DEFAULT_PASSWORD))


class AdminFactory(UserFactory):
    """An administrator."""

    role = "admin"
    email = factory.Sequence(lambda n: f"admin{n}@example.com")


def access_token_for(user: User, **session_fields: Any) -> str:
    """Open a login session for ``user`` directly in the database and return an access token."""
    auth_session = AuthSession(
        user_id=user.id, expires_at=utcnow() + timedelta(days=1), **session_fields
    )
    db.session.add(auth_session)
    db.session.flush()
    return (
        token_codec().encode(subject=user.id, token_type="access", session_id=auth_session.id).token
    )


def auth_headers(user: User) -> dict[str, str]:
    """``Authorization`` header for ``user``."""
    return {"Authorization": f"Bearer {access_token_for(user)}"}


def principal(user: User) -> Principal:
    """The principal of ``user`` (as the auth layer would build it)."""
    return Principal(user_id=user.id, role=user.role, session_id=uuid.uuid4())
