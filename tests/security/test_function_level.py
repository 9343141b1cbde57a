"""API5 Broken Function Level Authorization: every administrators' operation refuses a user
(403) and an anonymous caller (401); every other secured operation refuses an anonymous caller.
The admin operations are read from the document (everything under /api/v1/users but /me), so a
new one is covered as soon as it is added."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from app.users.models import User
from tests.factories import auth_headers
from tests.security.conftest import (
    Operation,
    assert_error_shape,
    document_operations,
    valid_body,
)

OPERATIONS = document_operations()
ADMIN_OPERATIONS = [
    operation
    for operation in OPERATIONS
    if operation.path.startswith("/api/v1/users")
    and not operation.path.startswith("/api/v1/users/me")
]
SECURED = [operation for operation in OPERATIONS if operation.spec.get("security")]


def test_the_admin_operations_are_found_and_documented_as_such() -> None:
    assert {operation.operation_id for operation in ADMIN_OPERATIONS} >= {
        "listUsers",
        "getUser",
        "updateUser",
        "deleteUser",
    }
    for operation in ADMIN_OPERATIONS:
        assert {"401", "403"} <= set(operation.spec["responses"]), operation


@pytest.mark.parametrize("operation", ADMIN_OPERATIONS, ids=str)
def test_a_user_is_refused_every_admin_operation(
    client: FlaskClient, user: User, other_user: User, operation: Operation
) -> None:
    url = operation.url({"user_id": other_user.id})
    body = valid_body(operation) if "requestBody" in operation.spec else None

    response = client.open(url, method=operation.method, json=body, headers=auth_headers(user))

    assert_error_shape(response, 403)
    assert client.get(f"/api/v1/users/{other_user.id}").status_code == 401


@pytest.mark.parametrize("operation", SECURED, ids=str)
def test_every_secured_operation_refuses_an_anonymous_caller(
    client: FlaskClient, operation: Operation
) -> None:
    values = {"task_id": 1, "job_id": 1, "user_id": 1, "webhook_id": UUID, "delivery_id": UUID}
    response = client.open(operation.url(values), method=operation.method)

    assert_error_shape(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_user_cannot_escalate_by_listing_someone_elses_tasks(
    client: FlaskClient, user: User, other_user: User
) -> None:
    response = client.get(f"/api/v1/tasks?owner_id={other_user.id}", headers=auth_headers(user))

    assert_error_shape(response, 403)


UUID = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
