"""Security headers on every response, a strict CSP on the API, a workable one on /docs, HSTS in
production only, and debug mode never in production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.config import ConfigError
from app.core.security_headers import API_POLICY, DOCS_POLICY
from tests.conftest import make_test_app
from tests.factories import DEFAULT_PASSWORD

COMMON = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def directives(policy: str) -> dict[str, str]:
    """CSP directive name -> its sources."""
    pairs = (part.strip().partition(" ") for part in policy.split(";") if part.strip())
    return {name: sources for name, _, sources in pairs}


@pytest.mark.parametrize(
    "url",
    ["/api/v1/tasks", "/api/v1/openapi.json", "/health/live", "/no-such-page", "/docs"],
)
def test_every_response_carries_the_common_headers(client: FlaskClient, url: str) -> None:
    response = client.get(url)

    for name, value in COMMON.items():
        assert response.headers.get(name) == value, (url, name)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in response.headers  # not production


def test_api_responses_allow_nothing_to_run(client: FlaskClient) -> None:
    response = client.get("/api/v1/tasks")

    assert response.headers["Content-Security-Policy"] == API_POLICY
    assert directives(API_POLICY)["default-src"] == "'none'"


def test_the_docs_page_allows_only_its_own_scripts(client: FlaskClient) -> None:
    response = client.get("/docs")

    policy = directives(response.headers["Content-Security-Policy"])
    assert response.headers["Content-Security-Policy"] == DOCS_POLICY
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["connect-src"] == "'self'"  # "Try it out" calls this origin only
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"


def test_token_responses_are_not_cached(client: FlaskClient, user: Any) -> None:
    response = client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
    )

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Security-Policy"] == API_POLICY


def production_app(database_url: str, tmp_path: Path, **overrides: str) -> Flask:
    """An app of the production profile (nothing is contacted to build it)."""
    return create_app(
        {
            "APP_ENV": "production",
            "SECRET_KEY": "p" * 40,
            "DATABASE_URL": database_url,
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "SMTP_HOST": "smtp.example.com",
            "PUBLIC_BASE_URL": "https://app.example.com",
            "INSTANCE_PATH": str(tmp_path),
            "LOG_LEVEL": "WARNING",
            **overrides,
        }
    )


def test_production_sends_hsts_and_is_never_in_debug_mode(
    database_url: str, tmp_path: Path
) -> None:
    app = production_app(database_url, tmp_path)

    response = app.test_client().get("/health/live")

    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert app.debug is False
    assert app.config["DEBUG"] is False


def test_production_refuses_debug_mode_from_the_environment(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `flask --debug run` (or FLASK_DEBUG=1) puts in the environment.
    monkeypatch.setenv("FLASK_DEBUG", "1")

    with pytest.raises(ConfigError, match="FLASK_DEBUG"):
        production_app(database_url, tmp_path)


def test_outside_production_debug_mode_follows_the_setting(
    database_url: str, instance_path: Path
) -> None:
    app = make_test_app(database_url, instance_path, FLASK_DEBUG=True)

    assert app.debug is True


def test_a_view_keeps_the_values_it_set_and_no_header_is_doubled(tmp_path: Path) -> None:
    app = create_app({"APP_ENV": "testing", "INSTANCE_PATH": str(tmp_path)})

    @app.get("/framed")
    def framed() -> Any:
        return "", 204, {"x-frame-options": "SAMEORIGIN", "Content-Security-Policy": "sandbox"}

    response = app.test_client().get("/framed")

    assert response.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.headers.getlist("Content-Security-Policy") == ["sandbox"]
    for name in COMMON:
        assert len(response.headers.getlist(name)) == 1, name
