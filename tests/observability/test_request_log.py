"""One JSON line per request: what it carries, its level, and what it never carries."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.core.logging import JsonFormatter
from tests.conftest import make_test_app
from tests.factories import DEFAULT_PASSWORD, access_token_for, auth_headers

TASK_ROUTE = "/api/v1/tasks/<int(max=9223372036854775807):task_id>"


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Any:
    """The request lines logged so far, as the JSON the production formatter writes."""
    caplog.set_level(logging.DEBUG)
    formatter = JsonFormatter()

    def read() -> list[dict[str, Any]]:
        return [
            json.loads(formatter.format(record))
            for record in caplog.records
            if record.name == "app.request"
        ]

    return read


def test_one_line_with_every_field(client: FlaskClient, user: Any, lines: Any) -> None:
    created = client.post(
        "/api/v1/tasks",
        json={"title": "logged"},
        headers={
            **auth_headers(user),
            "X-Request-ID": "req-0123456789",
            "User-Agent": "probe/1.0",
        },
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert created.status_code == 201
    [line] = lines()
    assert line["level"] == "info"
    assert line["method"] == "POST"
    assert line["route"] == "/api/v1/tasks"
    assert line["path"] == "/api/v1/tasks"
    assert line["status"] == 201
    assert line["duration_ms"] > 0
    assert line["request_id"] == "req-0123456789" == created.headers["X-Request-ID"]
    assert line["user_id"] == user.id
    assert line["client_addr"] == "203.0.113.9"
    assert line["user_agent"] == "probe/1.0"
    assert line["message"].startswith("POST /api/v1/tasks 201 ")


def test_route_is_the_template_and_path_the_request(
    client: FlaskClient, user: Any, lines: Any
) -> None:
    client.get("/api/v1/tasks/424242", headers=auth_headers(user))
    [line] = lines()
    assert (line["route"], line["path"], line["status"]) == (
        TASK_ROUTE,
        "/api/v1/tasks/424242",
        404,
    )


def test_anonymous_and_rejected_requests_are_logged(client: FlaskClient, lines: Any) -> None:
    client.get("/api/v1/tasks")  # 401: refused before the view
    client.get("/nowhere")  # 404: no route
    first, second = lines()
    assert (first["status"], first["user_id"], first["level"]) == (401, None, "info")
    assert (second["route"], second["status"]) == ("<unmatched>", 404)


def test_server_errors_are_logged_as_errors(
    database_url: str, instance_path: Path, lines: Any
) -> None:
    def explode() -> str:
        raise RuntimeError("boom")

    app = make_test_app(database_url, instance_path)
    app.add_url_rule("/_test/explode", "test_explode", explode)
    response = app.test_client().get("/_test/explode")
    assert response.status_code == 500
    [line] = lines()
    assert (line["status"], line["level"], line["route"]) == (500, "error", "/_test/explode")


def test_probes_are_quiet(client: FlaskClient, lines: Any) -> None:
    client.get("/health/live")
    [line] = lines()
    assert line["level"] == "debug"


def test_no_secret_reaches_any_log_line(
    client: FlaskClient, user: Any, caplog: pytest.LogCaptureFixture, lines: Any
) -> None:
    token = access_token_for(user)
    client.post("/api/v1/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD})
    client.post("/api/v1/auth/login", json={"email": user.email, "password": "wrong-Secret-42"})
    client.get(
        "/api/v1/tasks?q=query-secret-value",
        headers={"Authorization": f"Bearer {token}", "Cookie": "session=cookie-secret"},
    )
    assert len(lines()) == 3
    everything = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    for secret in (
        DEFAULT_PASSWORD,
        "wrong-Secret-42",
        token,
        "query-secret-value",
        "cookie-secret",
    ):
        assert secret not in everything
    assert "Bearer" not in everything


def test_user_agent_is_truncated(client: FlaskClient, lines: Any) -> None:
    client.get("/health/ready", headers={"User-Agent": "x" * 5000})
    [line] = lines()
    assert len(line["user_agent"]) == 200
