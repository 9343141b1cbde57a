"""Shared fixtures of the security tests: the OpenAPI document walked operation by operation
(with a valid body for each, from the document's examples), objects of a first user to attack
with a second, and the one error shape to expect."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.events import service as events
from app.users.models import User
from app.webhooks import deliveries
from tests.factories import auth_headers
from tests.support import openapi_bodies
from tests.webhooks.conftest import fake_dns  # noqa: F401 (a fixture used below)

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
OPENAPI_PATH = "/api/v1/openapi.json"
ERROR_KEYS = {"code", "status", "message", "request_id"}
UNKNOWN_ID = {"int": 987654321, "uuid": "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"}


@dataclass(frozen=True)
class Operation:
    """One operation of the document."""

    method: str
    path: str
    spec: dict[str, Any]

    @property
    def operation_id(self) -> str:
        """Its operationId."""
        return str(self.spec["operationId"])

    @property
    def path_names(self) -> list[str]:
        """The names of its path parameters, in order."""
        return re.findall(r"{(\w+)}", self.path)

    def url(self, values: dict[str, Any]) -> str:
        """The path with ``values`` for its parameters."""
        return self.path.format(**values)

    def __str__(self) -> str:
        return self.operation_id


def load_document(app: Flask) -> dict[str, Any]:
    """The document the app serves."""
    document: dict[str, Any] = app.test_client().get(OPENAPI_PATH).get_json()
    return document


def operations(document: dict[str, Any]) -> list[Operation]:
    """Every operation of ``document``."""
    return [
        Operation(method.upper(), path, spec)
        for path, item in document["paths"].items()
        for method, spec in item.items()
        if method in HTTP_METHODS
    ]


@functools.cache
def app_document() -> dict[str, Any]:
    """The testing app's document, read once (for parametrising at collection time)."""
    from app import create_app

    return load_document(create_app({"APP_ENV": "testing", "DATABASE_URL": "sqlite://"}))


def document_operations() -> list[Operation]:
    """The operations of the testing app's document, for parametrising at collection time."""
    return operations(app_document())


def valid_body(operation: Operation) -> dict[str, Any]:
    """A valid JSON body for ``operation``, made of the document's examples (a fresh copy)."""
    return openapi_bodies.valid_body(app_document(), operation.spec)


def body_properties(operation: Operation) -> list[str]:
    """The properties of ``operation``'s JSON body, in the document's order."""
    return openapi_bodies.body_properties(app_document(), operation.spec)


def assert_error_shape(response: Any, status: int | None = None) -> dict[str, Any]:
    """``response`` is a JSON error in the one shape (of ``status`` when given)."""
    assert response.mimetype == "application/json", (response.status_code, response.data[:200])
    body: dict[str, Any] = response.get_json()
    assert set(body) >= ERROR_KEYS, body
    assert body["status"] == response.status_code
    assert 400 <= response.status_code < 500, body
    if status is not None:
        assert response.status_code == status, body
    return body


@pytest.fixture
def public_dns(fake_dns: dict[str, list[str]]) -> dict[str, list[str]]:  # noqa: F811
    """hooks.example.com resolves to a public address (no DNS on a test machine)."""
    return fake_dns


@dataclass
class Owned:
    """One object of each kind, owned by ``owner``."""

    owner: User
    ids: dict[str, Any]


@pytest.fixture
def owned(
    client: FlaskClient, db_session: Session, user: User, public_dns: dict[str, list[str]]
) -> Owned:
    """A task, a job, a webhook and a delivery of ``user``, made through the API."""
    headers = auth_headers(user)
    task = client.post("/api/v1/tasks", json={"title": "Mine"}, headers=headers)
    job = client.post("/api/v1/jobs", json={"type": "tasks.export"}, headers=headers)
    webhook = client.post(
        "/api/v1/webhooks",
        json={"url": "https://hooks.example.com/in", "event_types": ["*"]},
        headers=headers,
    )
    assert (task.status_code, job.status_code, webhook.status_code) == (201, 202, 201)
    event = events.record(db_session, events.TASK_CREATED, {"task_id": 1, "owner_id": user.id})
    db_session.flush()
    delivery_ids = deliveries.create_deliveries(db_session, event=event)
    db_session.flush()
    return Owned(
        user,
        {
            "task_id": task.json["id"],
            "job_id": job.json["id"],
            "webhook_id": webhook.json["id"],
            "delivery_id": str(delivery_ids[0]),
            "user_id": user.id,
        },
    )
