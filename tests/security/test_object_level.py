"""API1 Broken Object Level Authorization: every operation that takes an object's id, called by
another user with the first user's ids, is a 404 (the object's existence is not confirmed) and
changes nothing. The list comes from the OpenAPI document, so a new operation is covered the day
it is added (and fails here until its id kind is known)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from app.users.models import User
from tests.factories import auth_headers
from tests.security.conftest import (
    Operation,
    Owned,
    assert_error_shape,
    document_operations,
    valid_body,
)

OBJECT_OPERATIONS = [
    operation
    for operation in document_operations()
    if operation.path_names and not operation.path.startswith("/api/v1/users/")
]


def test_every_resource_kind_is_covered() -> None:
    kinds = {name for operation in OBJECT_OPERATIONS for name in operation.path_names}

    assert kinds == {"task_id", "job_id", "webhook_id", "delivery_id"}
    assert len(OBJECT_OPERATIONS) >= 12


@pytest.mark.parametrize("operation", OBJECT_OPERATIONS, ids=str)
def test_another_users_object_is_404_and_untouched(
    client: FlaskClient, owned: Owned, other_user: User, operation: Operation
) -> None:
    url = operation.url(owned.ids)
    before = _snapshot(client, owned)
    # A valid body, so a refusal is about the object, not the body.
    body = valid_body(operation) if "requestBody" in operation.spec else None

    response = client.open(
        url, method=operation.method, json=body, headers=auth_headers(other_user)
    )

    assert_error_shape(response, 404)
    assert _snapshot(client, owned) == before


@pytest.mark.parametrize(
    "operation", [op for op in OBJECT_OPERATIONS if op.method == "GET"], ids=str
)
def test_the_owner_reaches_the_same_object(
    client: FlaskClient, owned: Owned, operation: Operation
) -> None:
    response = client.get(operation.url(owned.ids), headers=auth_headers(owned.owner))

    # 409: the export has no result file until a worker ran it; the job itself is found.
    assert response.status_code in (200, 409), response.json


def test_an_administrator_is_no_exception_for_someone_elses_task(
    client: FlaskClient, owned: Owned, admin: User
) -> None:
    response = client.get(f"/api/v1/tasks/{owned.ids['task_id']}", headers=auth_headers(admin))

    assert_error_shape(response, 404)


def _snapshot(client: FlaskClient, owned: Owned) -> list[Any]:
    headers = auth_headers(owned.owner)
    webhook = owned.ids["webhook_id"]
    urls = [
        f"/api/v1/tasks/{owned.ids['task_id']}",
        f"/api/v1/jobs/{owned.ids['job_id']}",
        f"/api/v1/webhooks/{webhook}",
        f"/api/v1/webhooks/{webhook}/deliveries",
    ]
    return [client.get(url, headers=headers).json for url in urls]
