"""The application factory itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from app.config import ConfigError, load_settings
from tests.conftest import make_test_app


def test_testing_profile_is_applied(app: Flask, database_url: str, instance_path: Path) -> None:
    assert app.config["TESTING"] is True
    assert app.config["DEBUG"] is False
    assert app.config["ENV_NAME"] == "testing"
    assert app.config["SECRET_KEY"]
    assert app.config["MAX_CONTENT_LENGTH"] == load_settings(APP_ENV="testing").MAX_CONTENT_LENGTH
    assert app.instance_path == str(instance_path)
    assert app.extensions["settings"].database_url.database in database_url


def test_overrides_reach_the_app(database_url: str, instance_path: Path) -> None:
    app = make_test_app(database_url, instance_path, MAX_CONTENT_LENGTH=4096)
    assert app.config["MAX_CONTENT_LENGTH"] == 4096


def test_settings_object_is_used_as_is(database_url: str, instance_path: Path) -> None:
    settings = load_settings(
        APP_ENV="testing", DATABASE_URL=database_url, INSTANCE_PATH=str(instance_path)
    )
    app = create_app(settings)
    assert app.extensions["settings"] is settings


def test_invalid_overrides_raise_config_error(database_url: str, instance_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^MAX_CONTENT_LENGTH:"):
        make_test_app(database_url, instance_path, MAX_CONTENT_LENGTH=1)


def test_each_app_is_independent(database_url: str, instance_path: Path) -> None:
    first = make_test_app(database_url, instance_path)
    second = make_test_app(database_url, instance_path)
    assert first.extensions["api"] is not second.extensions["api"]
    assert first.extensions["db_engine"] is not second.extensions["db_engine"]


def test_blueprints_are_registered(app: Flask) -> None:
    assert {"auth", "users", "tasks", "health", "api-docs"} <= set(app.blueprints)
    prefixes = {rule.rule for rule in app.url_map.iter_rules()}
    assert "/health/live" in prefixes
    assert "/health/ready" in prefixes


def test_api_blueprints_live_under_api_v1(app: Flask) -> None:
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in {"auth", "users", "tasks"}:
            assert rule.rule.startswith("/api/v1/"), rule.rule


def test_openapi_and_docs_routes_exist(app: Flask) -> None:
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert "/api/v1/openapi.json" in rules
    assert "/docs" in rules


def test_cli_commands_are_registered(app: Flask) -> None:
    assert {"db", "users"} <= set(app.cli.commands)
    db_commands = app.cli.commands["db"].commands  # type: ignore[attr-defined]
    assert {"upgrade", "downgrade", "current", "revision"} <= set(db_commands)


def test_docs_can_be_disabled(database_url: str, instance_path: Path) -> None:
    app = make_test_app(database_url, instance_path, DOCS_ENABLED=False)
    client = app.test_client()
    response = client.get("/docs")
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["code"] == "not_found"
    assert body["status"] == 404
    assert body["request_id"] == response.headers["X-Request-ID"]
    # The machine-readable document stays: clients generate code from it.
    assert client.get("/api/v1/openapi.json").status_code == 200
