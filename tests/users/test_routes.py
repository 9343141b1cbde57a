"""``/api/v1/users``: the caller's own account and user management by administrators."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.security import password_hashing
from app.events.models import OutboxEvent
from app.tasks.models import Task
from app.users.models import AuthSession, User
from tests.factories import DEFAULT_PASSWORD, AdminFactory, UserFactory, auth_headers
from tests.users.helpers import bearer, login, sessions_of

ME = "/api/v1/users/me"
USERS = "/api/v1/users"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
NEW_PASSWORD = "a brand new passphrase"


# --- GET /users/me ---------------------------------------------------------------------------


def test_get_me_returns_the_caller(client: FlaskClient, user: User) -> None:
    response = client.get(ME, headers=auth_headers(user))

    assert response.status_code == 200
    assert response.json == {
        "id": user.id,
        "email": user.email,
        "full_name": user.full_name,
        "role": "user",
        "is_active": True,
        "created_at": user.created_at.isoformat(),
        "updated_at": user.updated_at.isoformat(),
    }


def test_get_me_requires_a_token(client: FlaskClient) -> None:
    response = client.get(ME)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


# --- PATCH /users/me -------------------------------------------------------------------------


def test_patch_me_updates_name_and_normalised_email(
    client: FlaskClient, db_session: Session, user: User
) -> None:
    response = client.patch(
        ME,
        json={"full_name": "Grace Hopper", "email": " Grace@Example.org "},
        headers=auth_headers(user),
    )

    assert response.status_code == 200
    assert response.json["full_name"] == "Grace Hopper"
    assert response.json["email"] == "grace@example.org"
    db_session.refresh(user)
    assert user.email == "grace@example.org"


def test_patch_me_can_clear_the_name(client: FlaskClient, user: User) -> None:
    response = client.patch(ME, json={"full_name": None}, headers=auth_headers(user))

    assert response.status_code == 200
    assert response.json["full_name"] is None


def test_patch_me_keeps_own_email_in_other_case(client: FlaskClient, user: User) -> None:
    response = client.patch(ME, json={"email": user.email.upper()}, headers=auth_headers(user))

    assert response.status_code == 200
    assert response.json["email"] == user.email


def test_patch_me_duplicate_email_is_409(client: FlaskClient, user: User, other_user: User) -> None:
    response = client.patch(
        ME, json={"email": other_user.email.title()}, headers=auth_headers(user)
    )

    assert response.status_code == 409


@pytest.mark.parametrize(
    "body",
    [{"role": "admin"}, {"id": 999}, {"is_active": False}, {"password_hash": "x"}, {"nick": "x"}],
)
def test_patch_me_rejects_mass_assignment(
    client: FlaskClient, db_session: Session, user: User, body: dict[str, Any]
) -> None:
    response = client.patch(ME, json=body, headers=auth_headers(user))

    assert response.status_code == 422
    assert set(body) <= set(response.json["errors"]["json"])
    db_session.refresh(user)
    assert (user.role, user.is_active) == ("user", True)


def test_password_change_requires_current_password(
    client: FlaskClient, db_session: Session, user: User
) -> None:
    response = client.patch(ME, json={"password": NEW_PASSWORD}, headers=auth_headers(user))

    assert response.status_code == 422
    assert "current_password" in response.json["errors"]["json"]
    db_session.refresh(user)
    assert password_hashing().verify(user.password_hash, DEFAULT_PASSWORD)


def test_password_change_with_wrong_current_password_is_422(
    client: FlaskClient, db_session: Session, user: User
) -> None:
    response = client.patch(
        ME,
        json={"password": NEW_PASSWORD, "current_password": "not my password"},
        headers=auth_headers(user),
    )

    assert response.status_code == 422
    assert response.json["errors"] == {"json": {"current_password": ["Incorrect password."]}}
    db_session.refresh(user)
    assert password_hashing().verify(user.password_hash, DEFAULT_PASSWORD)


def test_wrong_current_password_blocks_the_other_changes_too(
    client: FlaskClient, db_session: Session, user: User
) -> None:
    email = user.email
    response = client.patch(
        ME,
        json={"email": "new@example.com", "current_password": "not my password"},
        headers=auth_headers(user),
    )

    assert response.status_code == 422
    db_session.refresh(user)
    assert user.email == email


@pytest.mark.parametrize(("length", "status"), [(7, 422), (8, 200), (128, 200), (129, 422)])
def test_new_password_length_bounds(
    client: FlaskClient, user: User, length: int, status: int
) -> None:
    response = client.patch(
        ME,
        json={"password": "n" * length, "current_password": DEFAULT_PASSWORD},
        headers=auth_headers(user),
    )

    assert response.status_code == status


def test_password_change_revokes_other_sessions_but_not_the_current_one(
    client: FlaskClient, user: User
) -> None:
    current = login(client, user)
    other = login(client, user)

    response = client.patch(
        ME,
        json={"password": NEW_PASSWORD, "current_password": DEFAULT_PASSWORD},
        headers=bearer(current["access_token"]),
    )

    assert response.status_code == 200
    assert client.get(ME, headers=bearer(current["access_token"])).status_code == 200
    assert client.post(REFRESH, json={"refresh_token": current["refresh_token"]}).status_code == 200
    assert client.get(ME, headers=bearer(other["access_token"])).status_code == 401
    assert client.post(REFRESH, json={"refresh_token": other["refresh_token"]}).status_code == 401
    reasons = {session.revoked_reason for session in sessions_of(user.id)}
    assert reasons == {None, "password_change"}
    old = client.post(LOGIN, json={"email": user.email, "password": DEFAULT_PASSWORD})
    assert old.status_code == 401
    login(client, user, NEW_PASSWORD)


# --- admin: function-level authorisation -----------------------------------------------------

ADMIN_ROUTES = [
    ("get", USERS, None),
    ("get", f"{USERS}/{{id}}", None),
    ("patch", f"{USERS}/{{id}}", {"full_name": "X"}),
    ("delete", f"{USERS}/{{id}}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_admin_routes_are_forbidden_to_users(
    client: FlaskClient,
    db_session: Session,
    user: User,
    other_user: User,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    response = getattr(client, method)(
        path.format(id=other_user.id), json=body, headers=auth_headers(user)
    )

    assert response.status_code == 403
    assert response.json["code"] == "forbidden"
    assert db_session.get(User, other_user.id, populate_existing=True) is not None
    assert other_user.full_name != "X"


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_admin_routes_require_a_token(
    client: FlaskClient, other_user: User, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = getattr(client, method)(path.format(id=other_user.id), json=body)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_demoted_admin_loses_admin_routes_at_once(
    client: FlaskClient, db_session: Session, admin: User
) -> None:
    headers = auth_headers(admin)
    assert client.get(USERS, headers=headers).status_code == 200
    admin.role = "user"
    db_session.flush()

    assert client.get(USERS, headers=headers).status_code == 403


# --- admin: list -----------------------------------------------------------------------------


def _ids(response: Any) -> list[int]:
    return [item["id"] for item in response.json["items"]]


def test_list_users_paginates_in_id_order(
    client: FlaskClient, db_session: Session, admin: User
) -> None:
    users = UserFactory.create_batch(4)
    # An UPDATE moves a row to the end of the PostgreSQL heap: without ORDER BY, a scan would
    # return this user last.
    users[0].full_name = "Moved"
    db_session.flush()
    all_ids = sorted(db_session.scalars(select(User.id)))
    headers = auth_headers(admin)

    first = client.get(USERS, query_string={"page_size": 2}, headers=headers)
    last = client.get(USERS, query_string={"page": 3, "page_size": 2}, headers=headers)
    beyond = client.get(USERS, query_string={"page": 4, "page_size": 2}, headers=headers)

    assert first.status_code == 200
    assert first.json["meta"] == {"page": 1, "page_size": 2, "total": 5, "pages": 3}
    assert _ids(first) == all_ids[:2]
    assert _ids(last) == all_ids[4:]
    assert beyond.json["items"] == []
    assert beyond.json["meta"]["total"] == 5
    assert not {"password", "password_hash"} & set(first.json["items"][0])


def test_list_users_filters(client: FlaskClient, db_session: Session, admin: User) -> None:
    ada = UserFactory(email="ada.lovelace@example.com")
    UserFactory(email="grace@example.org")
    gone = UserFactory(email="ada.byron@example.net", is_active=False)
    headers = auth_headers(admin)

    def ids(**query: Any) -> list[int]:
        response = client.get(USERS, query_string=query, headers=headers)
        assert response.status_code == 200, response.json
        return _ids(response)

    assert ids(email="ADA") == [ada.id, gone.id]
    assert ids(email="ada", is_active="true") == [ada.id]
    assert ids(is_active="false") == [gone.id]
    assert ids(role="admin") == [admin.id]
    assert ids(email="ada", role="admin") == []
    # LIKE wildcards in the filter match literally.
    assert ids(email="%") == []
    assert ids(email="_") == []


@pytest.mark.parametrize(
    "query",
    [{"page": 0}, {"page_size": 0}, {"page_size": 101}, {"role": "root"}, {"sort": "email"}],
)
def test_list_users_rejects_bad_query(
    client: FlaskClient, admin: User, query: dict[str, Any]
) -> None:
    response = client.get(USERS, query_string=query, headers=auth_headers(admin))

    assert response.status_code == 422


# --- admin: one user -------------------------------------------------------------------------


def test_admin_gets_a_user(client: FlaskClient, admin: User, user: User) -> None:
    response = client.get(f"{USERS}/{user.id}", headers=auth_headers(admin))

    assert response.status_code == 200
    assert response.json["email"] == user.email


@pytest.mark.parametrize("user_id", [0, 987654321, 2**63, 2**70])
def test_unknown_user_is_404(client: FlaskClient, admin: User, user_id: int) -> None:
    headers = auth_headers(admin)

    assert client.get(f"{USERS}/{user_id}", headers=headers).status_code == 404
    patch = client.patch(f"{USERS}/{user_id}", json={"full_name": "X"}, headers=headers)
    assert patch.status_code == 404
    assert client.delete(f"{USERS}/{user_id}", headers=headers).status_code == 404


def test_admin_updates_a_user(
    client: FlaskClient, db_session: Session, admin: User, user: User
) -> None:
    response = client.patch(
        f"{USERS}/{user.id}",
        json={"full_name": "Promoted", "role": "admin", "email": "Boss@Example.com"},
        headers=auth_headers(admin),
    )

    assert response.status_code == 200
    assert response.json["role"] == "admin"
    assert response.json["email"] == "boss@example.com"
    assert response.json["full_name"] == "Promoted"
    assert client.get(USERS, headers=auth_headers(user)).status_code == 200


def test_admin_update_duplicate_email_is_409(
    client: FlaskClient, admin: User, user: User, other_user: User
) -> None:
    response = client.patch(
        f"{USERS}/{user.id}", json={"email": other_user.email.upper()}, headers=auth_headers(admin)
    )

    assert response.status_code == 409


@pytest.mark.parametrize(
    "body", [{"role": "root"}, {"id": 5}, {"password": NEW_PASSWORD}, {"is_active": "maybe"}]
)
def test_admin_update_validates(
    client: FlaskClient, admin: User, user: User, body: dict[str, Any]
) -> None:
    response = client.patch(f"{USERS}/{user.id}", json=body, headers=auth_headers(admin))

    assert response.status_code == 422


def test_deactivating_a_user_revokes_their_sessions_at_once(
    client: FlaskClient, db_session: Session, admin: User, user: User
) -> None:
    pair = login(client, user)

    response = client.patch(
        f"{USERS}/{user.id}", json={"is_active": False}, headers=auth_headers(admin)
    )

    assert response.status_code == 200
    assert response.json["is_active"] is False
    assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 401
    (auth_session,) = sessions_of(user.id)
    assert auth_session.revoked_reason == "deactivated"
    # Reactivation does not bring the old tokens back.
    client.patch(f"{USERS}/{user.id}", json={"is_active": True}, headers=auth_headers(admin))
    assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 401
    assert client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).status_code == 401
    login(client, user)


@pytest.mark.parametrize("body", [{"role": "user"}, {"is_active": False}])
def test_admin_cannot_demote_or_deactivate_themselves(
    client: FlaskClient, db_session: Session, admin: User, body: dict[str, Any]
) -> None:
    response = client.patch(f"{USERS}/{admin.id}", json=body, headers=auth_headers(admin))

    assert response.status_code == 409
    db_session.refresh(admin)
    assert (admin.role, admin.is_active) == ("admin", True)


def test_admin_may_edit_their_own_name(client: FlaskClient, admin: User) -> None:
    response = client.patch(
        f"{USERS}/{admin.id}",
        json={"full_name": "Root", "role": "admin", "is_active": True},
        headers=auth_headers(admin),
    )

    assert response.status_code == 200
    assert response.json["full_name"] == "Root"


def test_admin_deletes_a_user_with_tasks_and_sessions(
    client: FlaskClient, db_session: Session, admin: User, user: User
) -> None:
    pair = login(client, user)
    db_session.add(Task(owner_id=user.id, title="doomed"))
    db_session.flush()
    user_id = user.id

    response = client.delete(f"{USERS}/{user_id}", headers=auth_headers(admin))

    assert response.status_code == 204
    assert response.data == b""
    db_session.expunge_all()
    assert db_session.get(User, user_id) is None
    assert db_session.scalar(select(func.count()).where(Task.owner_id == user_id)) == 0
    assert db_session.scalar(select(func.count()).where(AuthSession.user_id == user_id)) == 0
    events = db_session.scalars(select(OutboxEvent).where(OutboxEvent.name == "user.deleted"))
    assert [event.payload for event in events] == [{"user_id": user_id}]
    assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 401
    assert client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).status_code == 401


def test_admin_cannot_delete_themselves(
    client: FlaskClient, db_session: Session, admin: User
) -> None:
    response = client.delete(f"{USERS}/{admin.id}", headers=auth_headers(admin))

    assert response.status_code == 409
    assert db_session.get(User, admin.id, populate_existing=True) is not None


def test_admin_may_delete_another_admin(client: FlaskClient, admin: User) -> None:
    other_admin = AdminFactory()

    response = client.delete(f"{USERS}/{other_admin.id}", headers=auth_headers(admin))

    assert response.status_code == 204
