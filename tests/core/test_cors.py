"""CORS from the ``CORS_ALLOWED_ORIGINS`` allow-list only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import make_test_app

ALLOWED = "https://app.example.com"
EVIL = "https://evil.example.net"
ME = "/api/v1/users/me"


def cors_app(database_url: str, instance_path: Path, **overrides: Any) -> Flask:
    return make_test_app(database_url, instance_path, **overrides)


def preflight(client: FlaskClient, origin: str, path: str = ME, method: str = "PATCH") -> Any:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_by_default_no_origin_is_allowed(client: FlaskClient) -> None:
    response = client.get("/api/v1/tasks", headers={"Origin": ALLOWED})
    answer = preflight(client, ALLOWED)

    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_a_listed_origin_is_echoed_with_vary(database_url: str, instance_path: Path) -> None:
    app = cors_app(
        database_url, instance_path, CORS_ALLOWED_ORIGINS=f"{ALLOWED}/, http://localhost:5173"
    )
    client = app.test_client()

    response = client.get("/api/v1/tasks", headers={"Origin": ALLOWED})

    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Origin" in response.headers["Vary"]
    exposed = response.headers["Access-Control-Expose-Headers"]
    assert {"ETag", "Location", "Retry-After", "X-Request-ID", "X-RateLimit-Remaining"} <= {
        name.strip() for name in exposed.split(",")
    }
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_another_origin_gets_no_cors_headers(database_url: str, instance_path: Path) -> None:
    client = cors_app(database_url, instance_path, CORS_ALLOWED_ORIGINS=ALLOWED).test_client()

    response = client.get("/api/v1/tasks", headers={"Origin": EVIL})
    answer = preflight(client, EVIL)

    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Origin" in response.headers["Vary"]  # a cache must not reuse it for ALLOWED
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert "Access-Control-Allow-Methods" not in answer.headers


def test_a_preflight_lists_every_method_of_the_url(database_url: str, instance_path: Path) -> None:
    client = cors_app(
        database_url, instance_path, CORS_ALLOWED_ORIGINS=ALLOWED, CORS_MAX_AGE_SECONDS=120
    ).test_client()

    answer = preflight(client, ALLOWED)

    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == ALLOWED
    methods = {
        method.strip() for method in answer.headers["Access-Control-Allow-Methods"].split(",")
    }
    assert {"GET", "PATCH"} <= methods  # two rules share /users/me
    allowed_headers = answer.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers
    assert "content-type" in allowed_headers
    assert answer.headers["Access-Control-Max-Age"] == "120"
    assert preflight(client, ALLOWED, path="/api/v1/no-such-thing").status_code == 404


def test_credentials_only_for_listed_origins(database_url: str, instance_path: Path) -> None:
    client = cors_app(
        database_url, instance_path, CORS_ALLOWED_ORIGINS=ALLOWED, CORS_ALLOW_CREDENTIALS=True
    ).test_client()

    assert preflight(client, ALLOWED).headers["Access-Control-Allow-Credentials"] == "true"
    response = client.get("/api/v1/tasks", headers={"Origin": ALLOWED})
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


def test_any_origin_never_comes_with_credentials(database_url: str, instance_path: Path) -> None:
    client = cors_app(
        database_url, instance_path, CORS_ALLOWED_ORIGINS="*", CORS_ALLOW_CREDENTIALS=True
    ).test_client()

    response = client.get("/api/v1/tasks", headers={"Origin": EVIL})
    answer = preflight(client, EVIL)

    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Access-Control-Allow-Credentials" not in answer.headers


def test_preflights_spend_no_rate_limit_and_a_429_is_readable_cross_origin(
    database_url: str, instance_path: Path
) -> None:
    client = cors_app(
        database_url, instance_path, CORS_ALLOWED_ORIGINS=ALLOWED, RATELIMIT_DEFAULT="1/minute"
    ).test_client()

    assert [preflight(client, ALLOWED).status_code for _ in range(3)] == [204] * 3
    first = client.get("/api/v1/tasks", headers={"Origin": ALLOWED})
    refused = client.get("/api/v1/tasks", headers={"Origin": ALLOWED})

    assert first.status_code == 401
    assert refused.status_code == 429
    assert refused.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Retry-After" in refused.headers["Access-Control-Expose-Headers"]
