"""API4 Unrestricted Resource Consumption: every list is paged with a capped page size, every
body is capped in bytes (413), and every string and list the document bounds is refused one past
its bound. The caps are read from the document, so the document and the server cannot drift."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.users.models import User
from tests.factories import DEFAULT_PASSWORD, auth_headers
from tests.security.conftest import (
    Operation,
    Owned,
    app_document,
    assert_error_shape,
    document_operations,
    valid_body,
)
from tests.support.openapi_bodies import request_schema

OPERATIONS = document_operations()
LISTS = [
    operation
    for operation in OPERATIONS
    if any(parameter["name"] == "page_size" for parameter in operation.spec.get("parameters", []))
]
WITH_BODY = [operation for operation in OPERATIONS if "requestBody" in operation.spec]


def one_past(schema: dict[str, Any]) -> Any | None:
    """A value one past the documented bound of ``schema`` (None when it has none)."""
    if "maxLength" in schema:
        return "x" * (schema["maxLength"] + 1)
    if "maxItems" in schema:
        item = schema.get("items", {})
        sample = item["enum"][0] if "enum" in item else "item"
        return [sample] * (schema["maxItems"] + 1)
    if schema.get("type") == "array" and "maxLength" in schema.get("items", {}):
        return ["x" * (schema["items"]["maxLength"] + 1)]
    return None


def bounded_fields() -> list[tuple[Operation, str, Any]]:
    """(operation, field, value one past its bound) for every bounded body field."""
    document = app_document()
    cases = []
    for operation in WITH_BODY:
        body_schema = request_schema(document, operation.spec) or {}
        for name, schema in body_schema.get("properties", {}).items():
            values = [one_past(schema)]
            if schema.get("type") == "array" and "maxLength" in schema.get("items", {}):
                values.append(["x" * (schema["items"]["maxLength"] + 1)])
            cases += [(operation, name, value) for value in values if value is not None]
    return cases


BOUNDED = bounded_fields()


def test_every_list_and_bounded_field_is_found() -> None:
    assert {operation.operation_id for operation in LISTS} >= {
        "listTasks",
        "listUsers",
        "listWebhooks",
        "listWebhookDeliveries",
        "listJobs",
    }
    assert {(operation.operation_id, name) for operation, name, _ in BOUNDED} >= {
        ("createTask", "title"),
        ("createTask", "description"),
        ("createTask", "tags"),
        ("createWebhook", "url"),
        ("createWebhook", "event_types"),
        ("register", "password"),
        ("updateCurrentUser", "full_name"),
    }


@pytest.mark.parametrize("operation", LISTS, ids=str)
def test_the_page_size_is_capped(
    client: FlaskClient, app: Flask, owned: Owned, admin: User, operation: Operation
) -> None:
    cap = app.extensions["settings"].MAX_PAGE_SIZE
    url = operation.url(owned.ids)
    headers = auth_headers(admin if "/users" in operation.path else owned.owner)

    assert client.get(f"{url}?page_size={cap}", headers=headers).status_code == 200
    too_many = client.get(f"{url}?page_size={cap + 1}", headers=headers)
    assert "page_size" in assert_error_shape(too_many, 422)["errors"]["query"]


@pytest.mark.parametrize("operation", WITH_BODY, ids=str)
def test_every_body_is_capped_in_bytes(
    client: FlaskClient, app: Flask, owned: Owned, admin: User, operation: Operation
) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = b'{"title": "' + b"x" * limit + b'"}'

    response = client.open(
        operation.url(owned.ids),
        method=operation.method,
        data=body,
        content_type="application/json",
        headers=auth_headers(admin if "/users/{" in operation.path else owned.owner),
    )

    assert_error_shape(response, 413)


@pytest.mark.parametrize(
    ("operation", "field", "value"),
    BOUNDED,
    ids=[f"{operation}-{field}-{i}" for i, (operation, field, _) in enumerate(BOUNDED)],
)
def test_every_documented_bound_is_enforced(
    client: FlaskClient, owned: Owned, admin: User, operation: Operation, field: str, value: Any
) -> None:
    # A valid body, so one overlong field is the only fault.
    body = {**valid_body(operation), field: value}
    if field == "password" and operation.operation_id == "updateCurrentUser":
        body["current_password"] = DEFAULT_PASSWORD
    headers = auth_headers(admin if operation.operation_id == "updateUser" else owned.owner)

    response = client.open(
        operation.url(owned.ids), method=operation.method, json=body, headers=headers
    )

    errors = assert_error_shape(response, 422)["errors"]["json"]
    assert field in errors
    assert set(errors) == {field}, errors  # the rest of the body was valid


@pytest.mark.parametrize("operation", LISTS + [o for o in OPERATIONS if o.method == "GET"], ids=str)
def test_bounded_query_strings_are_enforced(
    client: FlaskClient, owned: Owned, admin: User, operation: Operation
) -> None:
    bounded = [
        parameter
        for parameter in operation.spec.get("parameters", [])
        if parameter["in"] == "query" and "maxLength" in parameter["schema"]
    ]
    headers = auth_headers(admin if "/users" in operation.path else owned.owner)
    for parameter in bounded:
        value = "x" * (parameter["schema"]["maxLength"] + 1)
        response = client.get(
            operation.url(owned.ids), query_string={parameter["name"]: value}, headers=headers
        )
        assert parameter["name"] in assert_error_shape(response, 422)["errors"]["query"]
