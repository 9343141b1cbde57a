"""Bad input never produces a 5xx or an HTML page: every operation that takes a JSON body is sent
malformed JSON, other media types, numbers too large for any type, JSON nested past the parser's
limit, invalid UTF-8, NUL bytes and lone surrogates, strings far over any bound, an empty body,
and JSON that is not an object; every operation gets unknown query parameters, and every API URL
the methods it does not allow. Each answer is JSON in the one error shape, with a 4xx status."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.users.models import User
from tests.factories import auth_headers
from tests.security.conftest import (
    UNKNOWN_ID,
    Operation,
    assert_error_shape,
    body_properties,
    document_operations,
    valid_body,
)

OPERATIONS = document_operations()
WITH_BODY = [operation for operation in OPERATIONS if "requestBody" in operation.spec]
PATH_VALUES = {
    "task_id": UNKNOWN_ID["int"],
    "job_id": UNKNOWN_ID["int"],
    "user_id": UNKNOWN_ID["int"],
    "webhook_id": UNKNOWN_ID["uuid"],
    "delivery_id": UNKNOWN_ID["uuid"],
}
JSON = "application/json"
HUGE_INTEGER = "1" + "0" * 5000  # past Python's 4300-digit conversion limit
NESTED = "[" * 100_000 + "]" * 100_000
# (name, content type, body); {field} is a property of the operation's body: each of them in turn.
BAD_BODIES: list[tuple[str, str, str | bytes]] = [
    ("malformed-json", JSON, '{"{field}": '),
    ("text-plain", "text/plain", "hello"),
    ("form", "application/x-www-form-urlencoded", "{field}=x"),
    ("xml", "application/xml", "<{field}>x</{field}>"),
    ("huge-float", JSON, '{"{field}": 1e400}'),
    ("huge-negative-float", JSON, '{"{field}": -1e400}'),
    ("huge-integer", JSON, '{"{field}": ' + HUGE_INTEGER + "}"),
    ("huge-integer-document", JSON, HUGE_INTEGER),
    ("deeply-nested", JSON, NESTED),
    ("deeply-nested-field", JSON, '{"{field}": ' + NESTED + "}"),
    ("invalid-utf8", JSON, b'{"{field}": "\xff\xfe\xfd"}'),
    ("nul-byte", JSON, '{"{field}": "a\\u0000b"}'),
    ("lone-surrogate", JSON, '{"{field}": "\\ud800"}'),
    ("overlong-string", JSON, '{"{field}": "' + "x" * 500_000 + '"}'),
    ("empty-body", JSON, ""),
    ("json-array", JSON, "[]"),
    ("json-null", JSON, "null"),
    ("json-string", JSON, '"{field}"'),
    ("nan", JSON, '{"{field}": NaN}'),
]


def send(client: FlaskClient, admin: User, operation: Operation, **kwargs: Any) -> Any:
    """Call ``operation`` as an administrator (so every operation reaches its body)."""
    return client.open(
        operation.url(PATH_VALUES), method=operation.method, headers=auth_headers(admin), **kwargs
    )


def test_every_body_operation_has_a_field_to_attack() -> None:
    assert len(WITH_BODY) >= 12
    assert all(body_properties(operation) for operation in WITH_BODY)


@pytest.mark.parametrize(
    ("kind", "content_type", "template"), BAD_BODIES, ids=lambda v: str(v)[:20]
)
@pytest.mark.parametrize("operation", WITH_BODY, ids=str)
def test_a_bad_body_is_a_4xx_in_the_error_shape(
    client: FlaskClient,
    admin: User,
    operation: Operation,
    kind: str,
    content_type: str,
    template: str | bytes,
) -> None:
    fields = body_properties(operation)
    names_a_field = "{field}" in (
        template.decode("latin-1") if isinstance(template, bytes) else template
    )
    # Each property in turn, so the bad value reaches every kind of field (text, date, list,
    # object); a template that names no field is sent once.
    for field in fields if names_a_field else fields[:1]:
        if isinstance(template, bytes):
            body: str | bytes = template.replace(b"{field}", field.encode())
        else:
            body = template.replace("{field}", field)

        response = send(client, admin, operation, data=body, content_type=content_type)

        assert response.status_code >= 400, (field, response.status_code)
        assert_error_shape(response)


@pytest.mark.parametrize("operation", WITH_BODY, ids=str)
def test_a_missing_content_type_with_a_body_is_a_4xx(
    client: FlaskClient, admin: User, operation: Operation
) -> None:
    body = json.dumps(valid_body(operation))  # valid: the missing content type is the fault

    response = send(client, admin, operation, data=body)

    assert_error_shape(response)


@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_unknown_query_parameters_never_break_an_operation(
    client: FlaskClient, admin: User, operation: Operation
) -> None:
    response = send(
        client,
        admin,
        operation,
        query_string={"unexpected": "1", "page_size": "1e400", "q": "\x00"},
    )

    assert response.status_code < 500
    assert response.mimetype == "application/json" or response.status_code in (204, 304)
    if response.status_code >= 400:
        assert_error_shape(response)


@pytest.mark.parametrize(
    "path", sorted({operation.path for operation in OPERATIONS}), ids=lambda path: path
)
def test_a_method_not_allowed_is_a_405_naming_the_allowed_ones(
    client: FlaskClient, admin: User, path: str
) -> None:
    allowed = {o.method for o in OPERATIONS if o.path == path}
    url = path.format(**PATH_VALUES)
    for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - allowed:
        response = client.open(url, method=method, headers=auth_headers(admin), json={})

        assert_error_shape(response, 405)
        assert set(response.headers["Allow"].split(", ")) >= allowed


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/tasks/99999999999999999999999",
        "/api/v1/tasks/-1",
        "/api/v1/tasks/1.5",
        "/api/v1/webhooks/not-a-uuid",
        "/api/v1/users/%00",
        "/api/v1/%ff%fe",
        "/api/v1/jobs/1/result/../../users",
        "/nothing-here",
    ],
)
def test_unusable_urls_are_404_in_the_error_shape(
    client: FlaskClient, admin: User, url: str
) -> None:
    response = client.get(url, headers=auth_headers(admin))

    assert_error_shape(response, 404)
