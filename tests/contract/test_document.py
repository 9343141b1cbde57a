"""What the contract fuzzer found, fixed: the document now states every rule the server checks
(and the server checks what the document states), so a client generating requests from the
document is never refused a valid one."""

from __future__ import annotations

import re
from typing import Any

import marshmallow as ma
import pytest
from flask import Flask
from flask.testing import FlaskClient
from marshmallow import validate

from app.core.schemas import MULTILINE_PATTERN, SINGLE_LINE_PATTERN, Text
from app.tasks.schemas import NOT_BLANK_PATTERN, TrimmedText
from app.users.models import User
from app.webhooks.schemas import EVENT_TYPE_CHOICES, URL_PATTERN
from tests.conftest import make_test_app
from tests.contract.support import OPENAPI_PATH
from tests.factories import auth_headers

SAMPLES = ["plain", "", " ", "  padded  ", "a\x00b", "tab\there", "two\nlines", "cr\r", "\x7f", "é"]


@pytest.fixture(scope="module")
def document(app: Flask) -> dict[str, Any]:
    """The served document."""
    served: dict[str, Any] = app.test_client().get(OPENAPI_PATH).get_json()
    return served


def accepted(field: ma.fields.Field[Any], value: str) -> bool:
    """True when ``field`` loads ``value``."""
    try:
        field.deserialize(value)
    except ma.ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    ("field", "pattern"),
    [
        (Text(), SINGLE_LINE_PATTERN),
        (Text(multiline=True), MULTILINE_PATTERN),
        (TrimmedText(validate=validate.Length(min=1)), NOT_BLANK_PATTERN),
    ],
)
@pytest.mark.parametrize("value", SAMPLES)
def test_the_documented_pattern_of_text_fields_is_the_rule_they_apply(
    field: ma.fields.Field[Any], pattern: str, value: str
) -> None:
    assert accepted(field, value) == bool(re.fullmatch(pattern, value))


def test_text_fields_carry_their_pattern_into_the_document(document: dict[str, Any]) -> None:
    title = document["components"]["schemas"]["TaskCreate"]["properties"]["title"]
    description = document["components"]["schemas"]["TaskCreate"]["properties"]["description"]

    assert title["pattern"] == NOT_BLANK_PATTERN
    assert description["pattern"] == MULTILINE_PATTERN


def test_a_trimmed_text_is_capped_as_sent(client: FlaskClient, user: User) -> None:
    padded = " " * 5 + "x" * 200

    response = client.post("/api/v1/tasks", json={"title": padded}, headers=auth_headers(user))

    assert response.status_code == 422
    assert "title" in response.json["errors"]["json"]


def test_the_page_size_maximum_in_the_document_is_the_configured_cap(
    database_url: str, instance_path: Any
) -> None:
    app = make_test_app(database_url, instance_path, MAX_PAGE_SIZE=37)
    document = app.test_client().get(OPENAPI_PATH).get_json()

    caps = {
        (path, method): parameter["schema"].get("maximum")
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "page_size"
    }
    assert len(caps) >= 5
    assert set(caps.values()) == {37}


@pytest.mark.parametrize(
    ("schema_name", "path"),
    [
        ("UserSelfUpdate", "/api/v1/users/me"),
        ("UserAdminUpdate", "/api/v1/users/{user}"),
        ("TaskUpdate", "/api/v1/tasks/{task}"),
        ("WebhookUpdate", "/api/v1/webhooks/3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"),
    ],
)
def test_a_patch_names_at_least_one_field(
    client: FlaskClient, admin: User, document: dict[str, Any], schema_name: str, path: str
) -> None:
    from tests.factories import UserFactory

    other = UserFactory()
    task = client.post("/api/v1/tasks", json={"title": "T"}, headers=auth_headers(admin)).json
    url = path.format(user=other.id, task=task["id"])

    empty = client.patch(url, json={}, headers=auth_headers(admin))
    missing = client.patch(url, headers=auth_headers(admin))

    assert document["components"]["schemas"][schema_name]["minProperties"] == 1
    assert empty.status_code == 422, empty.json
    assert missing.status_code == 422, missing.json


def test_a_new_password_needs_the_current_one_in_the_document_too(
    client: FlaskClient, user: User, document: dict[str, Any]
) -> None:
    rules = document["components"]["schemas"]["UserSelfUpdate"]["anyOf"]

    response = client.patch(
        "/api/v1/users/me", json={"password": "a new passphrase"}, headers=auth_headers(user)
    )

    assert {"required": ["current_password"]} in rules
    assert response.status_code == 422
    assert "current_password" in response.json["errors"]["json"]


def test_lists_are_capped_as_sent_duplicates_included(client: FlaskClient, user: User) -> None:
    headers = auth_headers(user)
    tags = [f"t{i}" for i in range(20)] + ["t0"]
    names = ["task.created"] * (len(EVENT_TYPE_CHOICES) + 1)

    task = client.post(
        "/api/v1/tasks", json={"title": "T", "tags": tags}, headers=auth_headers(user)
    )
    webhook = client.post(
        "/api/v1/webhooks",
        json={"url": "https://hooks.example.com/x", "event_types": names},
        headers=headers,
    )

    assert task.status_code == 422
    assert "tags" in task.json["errors"]["json"]
    assert webhook.status_code == 422
    assert "event_types" in webhook.json["errors"]["json"]


@pytest.mark.parametrize(
    ("url", "shape_ok"),
    [
        ("https://hooks.example.com/tasks?x=1", True),
        ("HTTP://hooks.example.com:8080", True),
        ("ftp://hooks.example.com/", False),
        ("https://user:secret@hooks.example.com/", False),
        ("https://hooks.example.com/a b", False),
        ("hooks.example.com", False),
        ("https:///path", False),
    ],
)
def test_the_webhook_url_pattern_is_the_shape_the_guard_checks(url: str, shape_ok: bool) -> None:
    assert bool(re.fullmatch(URL_PATTERN, url)) == shape_ok


def test_job_params_are_documented_per_type(
    client: FlaskClient, user: User, document: dict[str, Any]
) -> None:
    body = document["components"]["schemas"]["JobCreate"]
    branches = [ref["$ref"].rsplit("/", 1)[1] for ref in body["oneOf"]]
    valid = [
        {"type": "tasks.export", "params": {"format": "json", "tag": "q1"}},
        {"type": "tasks.bulk_update", "params": {"action": "complete_overdue"}},
        {"type": "tasks.bulk_update", "params": {"action": "set_status", "status": "done"}},
    ]
    invalid = [
        {"type": "tasks.export", "params": {"unknown": 1}},
        {"type": "tasks.bulk_update", "params": {"action": "set_status"}},
        {"type": "tasks.bulk_update", "params": {"action": "complete_overdue", "status": "done"}},
    ]

    assert branches == ["ExportJobCreate", "CompleteOverdueJobCreate", "SetStatusJobCreate"]
    assert document["components"]["schemas"]["SetStatusParams"]["required"] == [
        "action",
        "status",
    ]
    for job in valid:
        assert client.post("/api/v1/jobs", json=job, headers=auth_headers(user)).status_code == 202
    for job in invalid:
        assert client.post("/api/v1/jobs", json=job, headers=auth_headers(user)).status_code == 422


def test_idempotency_keys_document_the_characters_allowed(
    client: FlaskClient, user: User, document: dict[str, Any]
) -> None:
    parameter = next(
        parameter
        for parameter in document["paths"]["/api/v1/tasks"]["post"]["parameters"]
        if parameter["name"] == "Idempotency-Key"
    )
    refused = client.post(
        "/api/v1/tasks",
        json={"title": "T"},
        headers={**auth_headers(user), "Idempotency-Key": "two words"},
    )

    assert not re.fullmatch(parameter["schema"]["pattern"], "two words")
    assert re.fullmatch(parameter["schema"]["pattern"], "5f2b8c1e-7d4a")
    assert refused.status_code == 422


def test_an_unusable_if_match_is_a_failed_precondition(document: dict[str, Any]) -> None:
    delete = document["paths"]["/api/v1/tasks/{task_id}"]["delete"]

    assert "412" in delete["responses"]
    assert "422" not in delete["responses"]  # no body, and the header alone cannot be a 422


def test_links_name_existing_operations_and_their_parameters(document: dict[str, Any]) -> None:
    operations = {
        operation["operationId"]: (path, item, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    }
    links = {
        (source, name): link
        for source, (_path, _item, operation) in operations.items()
        for response in operation["responses"].values()
        for name, link in response.get("links", {}).items()
    }

    for link in links.values():
        path, _item, _target = operations[link["operationId"]]
        assert set(link.get("parameters", {})) == set(re.findall(r"{(\w+)}", path)), link
    targets = {(source, link["operationId"]) for (source, _), link in links.items()}
    assert {
        ("createTask", "getTask"),
        ("createTask", "updateTask"),
        ("createTask", "replaceTask"),
        ("createTask", "deleteTask"),
        ("createWebhook", "getWebhook"),
        ("createWebhook", "listWebhookDeliveries"),
        ("listWebhookDeliveries", "redeliverWebhookDelivery"),
        ("createJob", "getJob"),
        ("createJob", "cancelJob"),
        ("createJob", "downloadJobResult"),
        ("register", "login"),
        ("login", "refreshTokens"),
    } <= targets
