"""API3 Broken Object Property Level Authorization: read-only and privileged properties are
refused in every input (422, nothing changed), and no response of a whole CRUD pass carries a
secret: password hashes, token hashes, stored webhook secrets (the signing secret is shown once,
in the creation response, and never again)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.users.models import User
from tests.factories import DEFAULT_PASSWORD, auth_headers
from tests.security.conftest import Owned, assert_error_shape, document_operations, valid_body

FORBIDDEN_KEYS = {
    "password",
    "password_hash",
    "current_password",
    "new_password",
    "secret",
    "secret_ciphertext",
    "secret_encrypted",
    "token_hash",
    "refresh_token_hash",
    "jti",
}

OPERATIONS = {(operation.method, operation.path): operation for operation in document_operations()}


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "/api/v1/auth/register", {"role": "admin"}),
        ("POST", "/api/v1/auth/register", {"is_active": False}),
        ("POST", "/api/v1/auth/register", {"id": 1}),
        ("PATCH", "/api/v1/users/me", {"role": "admin"}),
        ("PATCH", "/api/v1/users/me", {"is_active": False}),
        ("PATCH", "/api/v1/users/me", {"id": 1}),
        ("PATCH", "/api/v1/users/me", {"password_hash": "x"}),
        ("POST", "/api/v1/tasks", {"owner_id": 1}),
        ("POST", "/api/v1/tasks", {"id": 1}),
        ("POST", "/api/v1/tasks", {"version": 9}),
        ("PATCH", "/api/v1/tasks/{task_id}", {"owner_id": 1}),
        ("PUT", "/api/v1/tasks/{task_id}", {"owner_id": 1}),
        ("PATCH", "/api/v1/tasks/{task_id}", {"completed_at": "2030-01-01T00:00:00Z"}),
        ("POST", "/api/v1/webhooks", {"secret": "whsec_chosen"}),
        ("POST", "/api/v1/webhooks", {"owner_id": 1}),
        ("PATCH", "/api/v1/webhooks/{webhook_id}", {"secret": "whsec_chosen"}),
        ("PATCH", "/api/v1/webhooks/{webhook_id}", {"disabled_reason": None}),
        ("POST", "/api/v1/jobs", {"owner_id": 1}),
        ("POST", "/api/v1/jobs", {"state": "succeeded"}),
    ],
)
def test_privileged_and_read_only_properties_are_refused(
    client: FlaskClient, owned: Owned, method: str, url: str, body: dict[str, Any]
) -> None:
    # A valid body, so the property is the only fault.
    valid = valid_body(OPERATIONS[(method, url)])
    before = client.get("/api/v1/users/me", headers=auth_headers(owned.owner)).json

    response = client.open(
        url.format(**owned.ids),
        method=method,
        json={**valid, **body},
        headers=auth_headers(owned.owner),
    )

    error = assert_error_shape(response, 422)
    [field] = body
    assert field in error["errors"]["json"], error
    assert set(error["errors"]["json"]) == {field}, error
    assert client.get("/api/v1/users/me", headers=auth_headers(owned.owner)).json == before


def test_an_administrator_cannot_set_a_password_or_an_id(
    client: FlaskClient, admin: User, user: User
) -> None:
    for body in ({"password": "a new passphrase"}, {"id": 99}, {"password_hash": "x"}):
        response = client.patch(f"/api/v1/users/{user.id}", json=body, headers=auth_headers(admin))
        assert_error_shape(response, 422)


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) of a JSON document, keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}/{key}", key
            yield from walk(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}/{index}")
    else:
        yield path, value


def test_no_response_of_a_full_crud_pass_exposes_a_secret(
    client: FlaskClient, db_session: Session, owned: Owned, admin: User
) -> None:
    user_headers = auth_headers(owned.owner)
    admin_headers = auth_headers(admin)
    tokens = client.post(
        "/api/v1/auth/login",
        json={"email": owned.owner.email, "password": DEFAULT_PASSWORD},
    ).json
    webhook = client.post(
        "/api/v1/webhooks",
        json={"url": "https://hooks.example.com/y", "event_types": ["*"]},
        headers=user_headers,
    )
    secret = webhook.json["secret"]
    webhook_url = f"/api/v1/webhooks/{webhook.json['id']}"
    task_url = f"/api/v1/tasks/{owned.ids['task_id']}"
    calls = [
        ("POST", "/api/v1/auth/register", {"email": "n@example.com", "password": "x" * 12}, None),
        ("POST", "/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]}, None),
        ("GET", "/api/v1/users/me", None, user_headers),
        ("PATCH", "/api/v1/users/me", {"full_name": "Ada"}, user_headers),
        ("GET", "/api/v1/users", None, admin_headers),
        ("GET", f"/api/v1/users/{owned.owner.id}", None, admin_headers),
        ("PATCH", f"/api/v1/users/{owned.owner.id}", {"full_name": "Ada L"}, admin_headers),
        ("GET", "/api/v1/tasks", None, user_headers),
        ("GET", task_url, None, user_headers),
        ("PATCH", task_url, {"status": "done"}, user_headers),
        ("PUT", task_url, {"title": "Again"}, user_headers),
        ("GET", "/api/v1/webhooks", None, user_headers),
        ("GET", webhook_url, None, user_headers),
        ("PATCH", webhook_url, {"description": "CRM"}, user_headers),
        ("GET", f"{webhook_url}/deliveries", None, user_headers),
        ("GET", f"/api/v1/webhooks/{owned.ids['webhook_id']}/deliveries", None, user_headers),
        (
            "POST",
            f"/api/v1/webhooks/{owned.ids['webhook_id']}/deliveries/"
            f"{owned.ids['delivery_id']}/redeliver",
            None,
            user_headers,
        ),
        ("GET", "/api/v1/jobs", None, user_headers),
        ("GET", f"/api/v1/jobs/{owned.ids['job_id']}", None, user_headers),
        ("DELETE", f"/api/v1/jobs/{owned.ids['job_id']}", None, user_headers),
        ("POST", "/api/v1/auth/password-reset", {"email": owned.owner.email}, None),
        ("DELETE", webhook_url, None, user_headers),
        ("DELETE", task_url, None, user_headers),
    ]

    exposed = []
    for method, url, body, headers in calls:
        response = client.open(url, method=method, json=body, headers=headers or {})
        assert response.status_code < 400, (method, url, response.json)
        for path, value in walk(response.get_json(silent=True) or {}):
            if value in FORBIDDEN_KEYS or (isinstance(value, str) and secret in value):
                exposed.append(f"{method} {url}: {path}")
        assert secret not in response.get_data(as_text=True)

    assert exposed == []
    assert "secret" in webhook.json  # shown once, at creation
