"""The valid bodies the other security tests start from, made of the document's examples, pass
the server's validation: so each refusal those tests prove is about the one fault they add, and
the examples Swagger UI offers are requests the server takes."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from app.users.models import User
from tests.factories import auth_headers
from tests.security.conftest import Operation, Owned, document_operations, valid_body

WITH_BODY = [operation for operation in document_operations() if "requestBody" in operation.spec]


def test_every_body_operation_is_found() -> None:
    assert {operation.operation_id for operation in WITH_BODY} >= {
        "register",
        "updateCurrentUser",
        "createTask",
        "updateTask",
        "createWebhook",
        "createJob",
    }


@pytest.mark.parametrize("operation", WITH_BODY, ids=str)
def test_the_documented_examples_make_a_valid_body(
    client: FlaskClient, owned: Owned, admin: User, operation: Operation
) -> None:
    headers = auth_headers(admin if "/users/{" in operation.path else owned.owner)
    body = valid_body(operation)

    response = client.open(
        operation.url(owned.ids), method=operation.method, json=body, headers=headers
    )

    # 422 is every refusal of a body's content; a 401 or 400 here (login, refresh, password reset
    # confirmation) refuses the example's credentials or token, which the document cannot know.
    assert response.status_code != 422, (body, response.json)
