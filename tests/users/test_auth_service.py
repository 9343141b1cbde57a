"""Login sessions and token rotation, below the HTTP layer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import delete, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.core.errors import Unauthorized
from app.core.security import password_hashing, token_codec
from app.extensions import db
from app.users import auth_service
from app.users.models import AuthSession, RefreshToken, User
from tests.factories import DEFAULT_PASSWORD, UserFactory


def test_rotation_slides_the_session_expiry(db_session: Session) -> None:
    user = UserFactory()
    first = auth_service.login(session=db_session, email=user.email, password=DEFAULT_PASSWORD)
    claims = token_codec().decode(first.refresh_token, expected_type="refresh")
    auth_session = db_session.get(AuthSession, claims.session_id)
    assert auth_session is not None
    auth_session.expires_at = utcnow() + timedelta(hours=1)
    db_session.flush()

    second = auth_service.refresh(session=db_session, refresh_token=first.refresh_token)

    new_claims = token_codec().decode(second.refresh_token, expected_type="refresh")
    assert auth_session.expires_at == new_claims.expires_at
    assert auth_session.expires_at > utcnow() + timedelta(days=13)


def test_reuse_revocation_is_committed_before_the_401(db_session: Session) -> None:
    user = UserFactory()
    pair = auth_service.login(session=db_session, email=user.email, password=DEFAULT_PASSWORD)
    auth_service.refresh(session=db_session, refresh_token=pair.refresh_token)

    with pytest.raises(Unauthorized):
        auth_service.refresh(session=db_session, refresh_token=pair.refresh_token)

    db_session.rollback()  # what the request teardown does after an error
    revoked = db_session.scalar(select(AuthSession).where(AuthSession.user_id == user.id))
    assert revoked is not None
    assert revoked.revoked_reason == "reuse"


def test_refresh_token_of_another_session_is_refused(db_session: Session) -> None:
    user = UserFactory()
    pair = auth_service.login(session=db_session, email=user.email, password=DEFAULT_PASSWORD)
    claims = token_codec().decode(pair.refresh_token, expected_type="refresh")
    other = auth_service.login(session=db_session, email=user.email, password=DEFAULT_PASSWORD)
    other_session = token_codec().decode(other.refresh_token, expected_type="refresh").session_id
    # A token whose jti is stored for one session but whose sid claims another.
    spliced = token_codec().encode(subject=user.id, token_type="refresh", session_id=other_session)
    db_session.execute(delete(RefreshToken).where(RefreshToken.jti == claims.token_id))
    db_session.add(
        RefreshToken(jti=spliced.token_id, session_id=claims.session_id, expires_at=utcnow())
    )
    db_session.flush()

    with pytest.raises(Unauthorized):
        auth_service.refresh(session=db_session, refresh_token=spliced.token)


def test_revoke_user_sessions_spares_the_excepted_one(db_session: Session) -> None:
    user, bystander = UserFactory(), UserFactory()
    keep, drop = (AuthSession(user_id=user.id, expires_at=utcnow() + timedelta(1)) for _ in "ab")
    theirs = AuthSession(user_id=bystander.id, expires_at=utcnow() + timedelta(1))
    db_session.add_all([keep, drop, theirs])
    db_session.flush()

    count = auth_service.revoke_user_sessions(
        db_session, user_id=user.id, reason="test", except_session_id=keep.id
    )

    assert count == 1
    for auth_session in (keep, drop, theirs):
        db_session.refresh(auth_session)
    assert (keep.revoked_at, theirs.revoked_at) == (None, None)
    assert drop.revoked_reason == "test"


def test_logout_is_idempotent(db_session: Session) -> None:
    user = UserFactory()
    pair = auth_service.login(session=db_session, email=user.email, password=DEFAULT_PASSWORD)
    session_id = token_codec().decode(pair.access_token, expected_type="access").session_id

    auth_service.logout(session=db_session, session_id=session_id)
    first_revocation = db_session.get(AuthSession, session_id)
    assert first_revocation is not None
    revoked_at = first_revocation.revoked_at
    auth_service.logout(session=db_session, session_id=session_id)

    assert revoked_at is not None
    assert first_revocation.revoked_at == revoked_at


@pytest.fixture
def committed_login(app: Flask) -> Iterator[tuple[str, str]]:
    """A user and login committed for real (visible to other connections); removed afterwards.

    Yields the refresh token and the jti it is stored under.
    """
    with app.app_context():
        email = f"lock-{uuid.uuid4().hex[:8]}@example.com"
        with Session(db.engine) as session:
            session.add(User(email=email, password_hash=password_hashing().hash(DEFAULT_PASSWORD)))
            session.commit()
            pair = auth_service.login(session=session, email=email, password=DEFAULT_PASSWORD)
        jti = token_codec().decode(pair.refresh_token, expected_type="refresh").token_id
        try:
            yield pair.refresh_token, jti
        finally:
            with Session(db.engine) as session:
                session.execute(delete(User).where(User.email == email))
                session.commit()


def test_refresh_waits_for_a_concurrent_rotation_of_the_same_token(
    app: Flask, committed_login: tuple[str, str]
) -> None:
    refresh_token, jti = committed_login
    with app.app_context(), db.engine.connect() as rotating:
        # Another request is rotating this token: it holds the row lock until it commits.
        with rotating.begin():
            rotating.execute(select(RefreshToken).where(RefreshToken.jti == jti).with_for_update())
            with Session(db.engine) as session:
                session.execute(text("SET LOCAL lock_timeout = '200ms'"))
                with pytest.raises(OperationalError, match="lock timeout") as waited:
                    auth_service.refresh(session=session, refresh_token=refresh_token)
            # It waited when reading the token, before deciding anything from a stale row.
            statement = " ".join(str(waited.value.statement).split())
            assert statement.startswith("SELECT refresh_tokens.")
            assert statement.endswith("FOR UPDATE")
            rotating.rollback()
        # Once the lock is released the same token rotates normally.
        with Session(db.engine) as session:
            pair = auth_service.refresh(session=session, refresh_token=refresh_token)
        assert pair.refresh_token != refresh_token
