"""``/api/v1/auth``: registration, login, refresh rotation with reuse detection, logout, and the
attacks a bearer-token API must refuse."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.core.security import password_hashing, token_codec
from app.events.models import OutboxEvent
from app.users.models import RefreshToken, User
from tests.factories import DEFAULT_PASSWORD, UserFactory, access_token_for
from tests.users.helpers import bearer, live_session, login, sessions_of, sign, valid_claims

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"
INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token"'


def assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401, response.json
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN_CHALLENGE
    assert response.json["code"] == "unauthorized"


# --- register ------------------------------------------------------------------------------


def test_register_creates_user_and_records_event(client: FlaskClient, db_session: Session) -> None:
    response = client.post(
        REGISTER,
        json={"email": "  Ada@Example.COM ", "password": "a" * 8, "full_name": "Ada Lovelace"},
    )

    assert response.status_code == 201, response.json
    body = response.json
    assert body["email"] == "ada@example.com"
    assert body["full_name"] == "Ada Lovelace"
    assert body["role"] == "user"
    assert body["is_active"] is True
    assert not {"password", "password_hash"} & set(body)
    stored = db_session.get(User, body["id"])
    assert stored is not None
    assert stored.password_hash != "a" * 8
    assert password_hashing().verify(stored.password_hash, "a" * 8)
    events = db_session.scalars(
        select(OutboxEvent).where(OutboxEvent.name == "user.registered")
    ).all()
    assert [event.payload for event in events] == [{"user_id": body["id"]}]


def test_register_duplicate_email_in_other_case_is_409(client: FlaskClient, user: User) -> None:
    response = client.post(
        REGISTER, json={"email": user.email.upper(), "password": DEFAULT_PASSWORD}
    )

    assert response.status_code == 409
    assert response.json["code"] == "conflict"


@pytest.mark.parametrize(("length", "status"), [(7, 422), (8, 201), (128, 201), (129, 422)])
def test_register_password_length_bounds(client: FlaskClient, length: int, status: int) -> None:
    response = client.post(REGISTER, json={"email": "bounds@example.com", "password": "p" * length})

    assert response.status_code == status
    if status == 422:
        assert "password" in response.json["errors"]["json"]


@pytest.mark.parametrize(
    "extra", [{"role": "admin"}, {"id": 1}, {"is_active": False}, {"is_admin": True}]
)
def test_register_rejects_read_only_and_unknown_fields(
    client: FlaskClient, db_session: Session, extra: dict[str, Any]
) -> None:
    body = {"email": "mass@example.com", "password": DEFAULT_PASSWORD, **extra}

    response = client.post(REGISTER, json=body)

    assert response.status_code == 422
    assert set(extra) <= set(response.json["errors"]["json"])
    assert db_session.scalar(select(User).where(User.email == "mass@example.com")) is None


@pytest.mark.parametrize(
    "body",
    [
        {"password": DEFAULT_PASSWORD},
        {"email": "not-an-email", "password": DEFAULT_PASSWORD},
        {"email": "x@example.com"},
        {"email": "x@example.com", "password": DEFAULT_PASSWORD, "full_name": "Bad\x00Name"},
        {"email": "x@example.com", "password": DEFAULT_PASSWORD, "full_name": "n" * 101},
    ],
)
def test_register_validates_fields(client: FlaskClient, body: dict[str, Any]) -> None:
    response = client.post(REGISTER, json=body)

    assert response.status_code == 422
    assert response.json["errors"]["json"]


# --- login ---------------------------------------------------------------------------------


def test_login_issues_token_pair_and_stores_only_the_jti(
    client: FlaskClient, db_session: Session, user: User
) -> None:
    response = client.post(LOGIN, json={"email": user.email.upper(), "password": DEFAULT_PASSWORD})

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    access = token_codec().decode(body["access_token"], expected_type="access")
    refresh = token_codec().decode(body["refresh_token"], expected_type="refresh")
    assert access.subject == refresh.subject == user.id
    assert access.session_id == refresh.session_id
    (auth_session,) = sessions_of(user.id)
    assert auth_session.id == refresh.session_id
    assert auth_session.revoked_at is None
    assert auth_session.expires_at == refresh.expires_at
    (stored,) = db_session.scalars(
        select(RefreshToken).where(RefreshToken.session_id == auth_session.id)
    ).all()
    assert stored.jti == refresh.token_id
    assert stored.used_at is None
    assert client.get(ME, headers=bearer(body["access_token"])).json["id"] == user.id


@pytest.mark.parametrize(
    "credentials",
    [
        {"email": "nobody@example.com", "password": DEFAULT_PASSWORD},
        {"password": "wrong password"},
    ],
    ids=["unknown-email", "wrong-password"],
)
def test_login_failures_are_indistinguishable(
    client: FlaskClient, user: User, credentials: dict[str, str]
) -> None:
    response = client.post(LOGIN, json={"email": user.email, **credentials})

    assert_unauthorized(response)
    assert response.json["message"] == "The email or password is incorrect."
    assert sessions_of(user.id) == []


def test_inactive_user_cannot_log_in(client: FlaskClient, db_session: Session) -> None:
    inactive = UserFactory(is_active=False)

    response = client.post(LOGIN, json={"email": inactive.email, "password": DEFAULT_PASSWORD})

    assert_unauthorized(response)
    assert response.json["message"] == "The email or password is incorrect."


def test_login_rehashes_a_password_hashed_with_old_parameters(
    client: FlaskClient, db_session: Session, user: User
) -> None:
    old_hash = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1).hash(DEFAULT_PASSWORD)
    user.password_hash = old_hash
    db_session.flush()
    assert password_hashing().needs_rehash(old_hash)

    login(client, user)

    db_session.refresh(user)
    assert user.password_hash != old_hash
    assert not password_hashing().needs_rehash(user.password_hash)
    assert password_hashing().verify(user.password_hash, DEFAULT_PASSWORD)


def test_login_keeps_a_current_hash(client: FlaskClient, db_session: Session, user: User) -> None:
    current_hash = user.password_hash

    login(client, user)

    db_session.refresh(user)
    assert user.password_hash == current_hash


def test_login_requires_json_fields(client: FlaskClient) -> None:
    response = client.post(LOGIN, json={"email": "a@example.com"})

    assert response.status_code == 422
    assert "password" in response.json["errors"]["json"]


# --- refresh -------------------------------------------------------------------------------


def test_refresh_rotates_the_pair(client: FlaskClient, db_session: Session, user: User) -> None:
    first = login(client, user)

    response = client.post(REFRESH, json={"refresh_token": first["refresh_token"]})

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    second = response.json
    assert second["refresh_token"] != first["refresh_token"]
    old = token_codec().decode(first["refresh_token"], expected_type="refresh")
    new = token_codec().decode(second["refresh_token"], expected_type="refresh")
    assert new.session_id == old.session_id
    used = db_session.get(RefreshToken, old.token_id, populate_existing=True)
    assert used is not None
    assert used.used_at is not None
    assert client.get(ME, headers=bearer(second["access_token"])).status_code == 200
    third = client.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200


def test_replayed_refresh_token_revokes_the_whole_family(client: FlaskClient, user: User) -> None:
    stolen = login(client, user)
    rotated = client.post(REFRESH, json={"refresh_token": stolen["refresh_token"]}).json

    replay = client.post(REFRESH, json={"refresh_token": stolen["refresh_token"]})

    assert_unauthorized(replay)
    (auth_session,) = sessions_of(user.id)
    assert auth_session.revoked_at is not None
    assert auth_session.revoked_reason == "reuse"
    # The token issued by the rotation dies with its family, as do the access tokens.
    assert_unauthorized(client.post(REFRESH, json={"refresh_token": rotated["refresh_token"]}))
    assert_unauthorized(client.get(ME, headers=bearer(rotated["access_token"])))
    assert_unauthorized(client.get(ME, headers=bearer(stolen["access_token"])))


def test_reuse_revokes_only_that_family(client: FlaskClient, user: User) -> None:
    phone = login(client, user)
    laptop = login(client, user)
    client.post(REFRESH, json={"refresh_token": phone["refresh_token"]})

    client.post(REFRESH, json={"refresh_token": phone["refresh_token"]})

    assert client.get(ME, headers=bearer(laptop["access_token"])).status_code == 200
    assert client.post(REFRESH, json={"refresh_token": laptop["refresh_token"]}).status_code == 200


def test_access_token_is_refused_as_refresh_token(client: FlaskClient, user: User) -> None:
    pair = login(client, user)

    assert_unauthorized(client.post(REFRESH, json={"refresh_token": pair["access_token"]}))


def test_expired_refresh_token_is_refused(
    client: FlaskClient, db_session: Session, user: User
) -> None:
    auth_session = live_session(user)
    issued = token_codec().encode(
        subject=user.id,
        token_type="refresh",
        session_id=auth_session.id,
        now=utcnow() - timedelta(days=15),
    )
    db_session.add(
        RefreshToken(jti=issued.token_id, session_id=auth_session.id, expires_at=issued.expires_at)
    )
    db_session.flush()

    assert_unauthorized(client.post(REFRESH, json={"refresh_token": issued.token}))


def test_refresh_token_unknown_to_the_server_is_refused(client: FlaskClient, user: User) -> None:
    auth_session = live_session(user)
    forged = token_codec().encode(subject=user.id, token_type="refresh", session_id=auth_session.id)

    assert_unauthorized(client.post(REFRESH, json={"refresh_token": forged.token}))


def test_refresh_of_a_deactivated_user_is_refused(
    client: FlaskClient, db_session: Session, user: User
) -> None:
    pair = login(client, user)
    user.is_active = False
    db_session.flush()

    assert_unauthorized(client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}))


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 4097])
def test_refresh_rejects_malformed_tokens(client: FlaskClient, token: str) -> None:
    response = client.post(REFRESH, json={"refresh_token": token})

    assert response.status_code in {401, 422}
    if response.status_code == 401:
        assert_unauthorized(response)


# --- logout --------------------------------------------------------------------------------


def test_logout_revokes_access_and_refresh_tokens(client: FlaskClient, user: User) -> None:
    pair = login(client, user)

    response = client.post(LOGOUT, headers=bearer(pair["access_token"]))

    assert response.status_code == 204
    assert response.data == b""
    assert_unauthorized(client.get(ME, headers=bearer(pair["access_token"])))
    assert_unauthorized(client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}))
    (auth_session,) = sessions_of(user.id)
    assert auth_session.revoked_reason == "logout"


def test_logout_leaves_other_sessions_alone(client: FlaskClient, user: User) -> None:
    first = login(client, user)
    second = login(client, user)

    client.post(LOGOUT, headers=bearer(first["access_token"]))

    assert client.get(ME, headers=bearer(second["access_token"])).status_code == 200


def test_logout_requires_a_token(client: FlaskClient) -> None:
    assert_unauthorized(client.post(LOGOUT))


# --- access-token attacks ------------------------------------------------------------------


def _unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, default=lambda value: int(value.timestamp())).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _forge(attack: str, user: User) -> str:
    claims = valid_claims(user, live_session(user))
    if attack == "alg-none":
        return _unsigned(claims)
    if attack == "wrong-key":
        return sign(claims, key="an-attacker-key-that-is-long-enough-for-hs256")
    if attack == "expired":
        claims["iat"] = utcnow() - timedelta(hours=1)
        claims["exp"] = utcnow() - timedelta(minutes=10)
    elif attack == "wrong-issuer":
        claims["iss"] = "https://evil.example.com"
    elif attack == "wrong-audience":
        claims["aud"] = "another-api"
    elif attack == "refresh-as-access":
        claims["type"] = "refresh"
    elif attack in {"no-type", "no-jti", "no-exp", "no-sub"}:
        del claims[{"no-type": "type", "no-jti": "jti", "no-exp": "exp", "no-sub": "sub"}[attack]]
    elif attack == "unknown-session":
        claims["sid"] = "00000000-0000-4000-8000-000000000000"
    elif attack == "other-users-session":
        claims["sub"] = str(UserFactory().id)
    return sign(claims)


@pytest.mark.parametrize(
    "attack",
    [
        "alg-none",
        "wrong-key",
        "expired",
        "wrong-issuer",
        "wrong-audience",
        "refresh-as-access",
        "no-type",
        "no-jti",
        "no-exp",
        "no-sub",
        "unknown-session",
        "other-users-session",
    ],
)
def test_forged_or_invalid_access_tokens_are_refused(
    client: FlaskClient, db_session: Session, user: User, attack: str
) -> None:
    token = _forge(attack, user)

    assert_unauthorized(client.get(ME, headers=bearer(token)))


def test_the_forging_helper_makes_valid_tokens_when_untampered(
    client: FlaskClient, db_session: Session, user: User
) -> None:
    # Proves the attack tests fail because of the tampering, not because of the helper.
    assert client.get(ME, headers=bearer(_forge("none", user))).status_code == 200


def test_refresh_token_from_login_is_refused_as_access_token(
    client: FlaskClient, user: User
) -> None:
    pair = login(client, user)

    assert_unauthorized(client.get(ME, headers=bearer(pair["refresh_token"])))


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
    ],
)
def test_missing_or_garbled_authorization_header(client: FlaskClient, header: str) -> None:
    headers = {"Authorization": header} if header else {}

    assert_unauthorized(client.get(ME, headers=headers))


def test_token_of_a_deactivated_user_stops_working_at_once(
    client: FlaskClient, db_session: Session, user: User
) -> None:
    token = access_token_for(user)
    assert client.get(ME, headers=bearer(token)).status_code == 200
    user.is_active = False
    db_session.flush()

    assert_unauthorized(client.get(ME, headers=bearer(token)))


def test_token_of_a_deleted_user_stops_working_at_once(
    client: FlaskClient, db_session: Session, user: User
) -> None:
    token = access_token_for(user)
    db_session.delete(user)
    db_session.flush()

    assert_unauthorized(client.get(ME, headers=bearer(token)))


def test_token_of_an_expired_session_is_refused(
    client: FlaskClient, db_session: Session, user: User
) -> None:
    auth_session = live_session(user)
    token = sign(valid_claims(user, auth_session))
    assert client.get(ME, headers=bearer(token)).status_code == 200
    auth_session.expires_at = utcnow() - timedelta(seconds=1)
    db_session.flush()

    assert_unauthorized(client.get(ME, headers=bearer(token)))
