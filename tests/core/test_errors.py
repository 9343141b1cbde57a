"""One JSON error shape for every error, never an HTML page, always carrying the request id."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from marshmallow import validate
from sqlalchemy import text
from werkzeug.test import TestResponse

from app.core.api import Blueprint
from app.core.errors import Conflict, NotFound
from app.core.schemas import StrictSchema, Text
from app.extensions import db
from tests.conftest import make_test_app
from tests.support.services import free_port

SECRET_DETAIL = "password=hunter2 at db-internal.example:5432"
PROBE_MAX_CONTENT_LENGTH = 256 * 1024  # room for 100,000 nesting brackets


class ProbeBody(StrictSchema):
    """A JSON body with one required, bounded string."""

    name = Text(required=True, validate=validate.Length(min=1, max=20))


def probe_blueprint() -> Blueprint:
    """Test-only routes, registered on their own app so the real one stays untouched."""
    blp = Blueprint("probe", __name__, url_prefix="/probe")

    @blp.route("/echo", methods=["POST"])
    @blp.arguments(ProbeBody)
    @blp.response(200, ProbeBody)
    def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    @blp.route("/crash")
    def crash() -> None:
        raise RuntimeError(SECRET_DETAIL)

    @blp.route("/missing")
    def missing() -> None:
        raise NotFound("No such widget.")

    @blp.route("/conflict")
    def conflict() -> None:
        raise Conflict("Already there.", errors={"json": {"name": ["Taken."]}})

    @blp.route("/database")
    def database() -> dict[str, int]:
        return {"one": db.session().execute(text("SELECT 1")).scalar_one()}

    return blp


def app_with_probes(database_url: str, instance_path: Path, **overrides: Any) -> Flask:
    """A testing app with the probe routes mounted under /api/v1/probe."""
    app = make_test_app(database_url, instance_path, **overrides)
    app.extensions["api"].register_blueprint(probe_blueprint(), url_prefix="/api/v1/probe")
    return app


@pytest.fixture(scope="module")
def probe_app(database_url: str, instance_path: Path) -> Flask:
    """The probe app on the test database, with a small body limit."""
    return app_with_probes(database_url, instance_path, MAX_CONTENT_LENGTH=PROBE_MAX_CONTENT_LENGTH)


@pytest.fixture
def probe(probe_app: Flask) -> FlaskClient:
    """A client of the probe app."""
    return probe_app.test_client()


def assert_error(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    """Check the one error shape and return the body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert b"<html" not in response.get_data().lower()
    body: dict[str, Any] = response.get_json()
    assert body["code"] == code
    assert body["status"] == status
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert set(body) <= {"code", "status", "message", "errors", "request_id"}
    return body


def post_raw(client: FlaskClient, data: bytes, content_type: str = "application/json") -> Any:
    """POST ``data`` as-is to the probe echo route."""
    return client.post("/api/v1/probe/echo", data=data, content_type=content_type)


# --- routing ---------------------------------------------------------------------------------


def test_unknown_route_is_404(client: FlaskClient) -> None:
    assert_error(client.get("/no/such/page"), 404, "not_found")


def test_unknown_api_route_is_404(client: FlaskClient) -> None:
    assert_error(client.get("/api/v1/no-such-resource"), 404, "not_found")


def test_wrong_method_is_405_with_allow(client: FlaskClient) -> None:
    response = client.delete("/health/live")
    assert_error(response, 405, "method_not_allowed")
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert "GET" in allowed
    assert "DELETE" not in allowed


def test_domain_exceptions_use_the_shape(probe: FlaskClient) -> None:
    body = assert_error(probe.get("/api/v1/probe/missing"), 404, "not_found")
    assert body["message"] == "No such widget."
    body = assert_error(probe.get("/api/v1/probe/conflict"), 409, "conflict")
    assert body["errors"] == {"json": {"name": ["Taken."]}}


# --- request bodies --------------------------------------------------------------------------


def test_a_valid_body_is_accepted(probe: FlaskClient) -> None:
    response = probe.post("/api/v1/probe/echo", json={"name": "widget"})
    assert response.status_code == 200
    assert response.get_json() == {"name": "widget"}


def test_malformed_json_is_400(probe: FlaskClient) -> None:
    body = assert_error(post_raw(probe, b'{"name": "unterminated'), 400, "bad_request")
    assert "json" in body["errors"]


def test_invalid_utf8_is_400(probe: FlaskClient) -> None:
    assert_error(post_raw(probe, b'{"name": "\xff\xfe\xfd"}'), 400, "bad_request")


def test_deeply_nested_json_is_400_not_500(probe: FlaskClient) -> None:
    assert_error(post_raw(probe, b"[" * 100_000), 400, "bad_request")


def test_deeply_nested_json_through_flask_get_json_is_400(
    database_url: str, instance_path: Path
) -> None:
    """Views that read ``request.get_json()`` directly are protected too."""
    app = make_test_app(database_url, instance_path)

    @app.post("/api/v1/raw")
    def raw() -> dict[str, Any]:
        from flask import request

        return {"kind": type(request.get_json()).__name__}

    client = app.test_client()
    assert client.post("/api/v1/raw", json=[[1]]).get_json() == {"kind": "list"}
    response = client.post("/api/v1/raw", data=b"[" * 100_000, content_type="application/json")
    assert_error(response, 400, "bad_request")


def test_body_over_the_limit_is_413(probe: FlaskClient) -> None:
    oversized = b'{"name": "' + b"x" * PROBE_MAX_CONTENT_LENGTH + b'"}'
    assert_error(post_raw(probe, oversized), 413, "payload_too_large")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_wrong_content_type_is_415(probe: FlaskClient, content_type: str) -> None:
    body = assert_error(
        post_raw(probe, b'{"name": "x"}', content_type), 415, "unsupported_media_type"
    )
    assert "application/json" in body["message"]


def test_validation_is_422_with_per_field_messages(probe: FlaskClient) -> None:
    response = probe.post("/api/v1/probe/echo", json={"name": "", "extra": 1})
    body = assert_error(response, 422, "validation_error")
    fields = body["errors"]["json"]
    assert set(fields) == {"name", "extra"}
    assert all(isinstance(message, str) for messages in fields.values() for message in messages)


def test_missing_required_field_is_422(probe: FlaskClient) -> None:
    body = assert_error(probe.post("/api/v1/probe/echo", json={}), 422, "validation_error")
    assert body["errors"]["json"]["name"] == ["Missing data for required field."]


def test_control_characters_are_422(probe: FlaskClient) -> None:
    body = assert_error(
        probe.post("/api/v1/probe/echo", json={"name": "nul\x00byte"}), 422, "validation_error"
    )
    assert "name" in body["errors"]["json"]


def test_json_that_is_not_an_object_is_422(probe: FlaskClient) -> None:
    assert_error(probe.post("/api/v1/probe/echo", json=["name"]), 422, "validation_error")


# --- unexpected errors -----------------------------------------------------------------------


def test_unexpected_exception_is_a_generic_500_logged_with_traceback(
    probe: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = probe.get("/api/v1/probe/crash")
    body = assert_error(response, 500, "internal_error")
    assert body["message"] == "An unexpected error occurred."
    raw = response.get_data(as_text=True)
    assert SECRET_DETAIL not in raw
    assert "RuntimeError" not in raw
    assert "Traceback" not in raw

    records = [record for record in caplog.records if record.exc_info]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.exc_info[0] is RuntimeError
    formatted = logging.Formatter().formatException(record.exc_info)
    assert "Traceback" in formatted
    assert SECRET_DETAIL in formatted
    assert "crash" in formatted  # the frame of the failing view


# --- request ids -----------------------------------------------------------------------------


def test_every_response_carries_a_generated_request_id(client: FlaskClient) -> None:
    first = client.get("/health/live").headers["X-Request-ID"]
    second = client.get("/health/live").headers["X-Request-ID"]
    assert first != second
    assert len(first) == 32
    int(first, 16)


@pytest.mark.parametrize(
    "request_id", ["abc-123_DEF.456:xyz", "f" * 128, "0b6f2c3e-8a41-4c1e-9a8e-3e5d2b1c0a9f"]
)
def test_a_well_formed_request_id_is_echoed(client: FlaskClient, request_id: str) -> None:
    response = client.get("/no/such/page", headers={"X-Request-ID": request_id})
    assert response.headers["X-Request-ID"] == request_id
    assert response.get_json()["request_id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    ["has spaces in it", "x" * 129, "short", "line\nInjected: yes", "tab\there-and-more", "é" * 10],
)
def test_a_malformed_request_id_is_replaced(client: FlaskClient, request_id: str) -> None:
    # environ_overrides: the test client itself would refuse a newline in a header.
    response = client.get("/no/such/page", environ_overrides={"HTTP_X_REQUEST_ID": request_id})
    replaced = response.headers["X-Request-ID"]
    assert replaced != request_id
    assert len(replaced) == 32
    assert response.get_json()["request_id"] == replaced


# --- database down ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_without_database(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """An app whose PostgreSQL is a closed port on 127.0.0.1."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    return app_with_probes(
        url, tmp_path_factory.mktemp("instance"), DATABASE_CONNECT_TIMEOUT_SECONDS=1
    )


def test_readiness_is_503_when_the_database_is_down(app_without_database: Flask) -> None:
    response = app_without_database.test_client().get("/health/ready")
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["status"] == "error"
    assert body["checks"]["database"]["status"] == "error"
    assert body["checks"]["database"]["latency_ms"] >= 0


def test_liveness_does_not_need_the_database(app_without_database: Flask) -> None:
    assert app_without_database.test_client().get("/health/live").status_code == 200


def test_api_route_needing_the_database_is_503_with_retry_after(
    app_without_database: Flask,
) -> None:
    response = app_without_database.test_client().get("/api/v1/probe/database")
    body = assert_error(response, 503, "service_unavailable")
    assert int(response.headers["Retry-After"]) > 0
    assert "OperationalError" not in body["message"]
    assert "127.0.0.1" not in response.get_data(as_text=True)


# --- the same errors on real endpoints -------------------------------------------------------

REGISTER = "/api/v1/auth/register"


def test_real_endpoint_malformed_json_is_400(client: FlaskClient) -> None:
    response = client.post(REGISTER, data=b'{"email": ', content_type="application/json")
    assert_error(response, 400, "bad_request")


def test_real_endpoint_invalid_utf8_is_400(client: FlaskClient) -> None:
    response = client.post(
        REGISTER, data=b'{"email": "\xc3\x28@example.com"}', content_type="application/json"
    )
    assert_error(response, 400, "bad_request")


def test_real_endpoint_deeply_nested_json_is_400(client: FlaskClient) -> None:
    response = client.post(REGISTER, data=b"[" * 100_000, content_type="application/json")
    assert_error(response, 400, "bad_request")


def test_real_endpoint_body_over_the_limit_is_413(client: FlaskClient, app: Flask) -> None:
    oversized = b'{"email": "' + b"x" * app.config["MAX_CONTENT_LENGTH"] + b'"}'
    response = client.post(REGISTER, data=oversized, content_type="application/json")
    assert_error(response, 413, "payload_too_large")


def test_real_endpoint_form_body_is_415(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/auth/login", data={"email": "ada@example.com", "password": "correct horse"}
    )
    assert_error(response, 415, "unsupported_media_type")


def test_real_endpoint_validation_is_422_per_field(client: FlaskClient) -> None:
    response = client.post(
        REGISTER, json={"email": "not-an-email", "password": "short", "role": "admin"}
    )
    body = assert_error(response, 422, "validation_error")
    assert set(body["errors"]["json"]) == {"email", "password", "role"}


def test_real_endpoint_is_503_when_the_database_is_down(app_without_database: Flask) -> None:
    response = app_without_database.test_client().post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": "correct horse"}
    )
    assert_error(response, 503, "service_unavailable")
    assert "Retry-After" in response.headers
