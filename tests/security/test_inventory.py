"""API9 Improper Inventory Management: the app exposes the versioned API and an allow-list of
operational URLs, nothing else; every API route is in the OpenAPI document; the documentation
itself can be turned off or restricted by configuration."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from app import API_PREFIX
from tests.conftest import make_test_app
from tests.security.conftest import load_document

# Every URL outside /api/v1, and why it may exist.
OPERATIONAL_RULES = {
    "/health/live": "liveness probe",
    "/health/ready": "readiness probe",
    "/metrics": "Prometheus (METRICS_ALLOWED_IPS only)",
    "/docs": "Swagger UI (DOCS_ENABLED, DOCS_ALLOWED_IPS)",
    "/static/<path:filename>": "Swagger UI assets only (see below)",
}


def test_only_the_versioned_api_and_allow_listed_urls_are_exposed(app: Flask) -> None:
    unexpected = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if not rule.rule.startswith(f"{API_PREFIX}/") and rule.rule not in OPERATIONAL_RULES
    ]

    assert unexpected == []


def test_the_static_folder_holds_only_the_swagger_ui_assets(app: Flask) -> None:
    static = Path(app.static_folder or "")
    files = [path.relative_to(static) for path in static.rglob("*") if path.is_file()]

    assert files
    assert [path for path in files if path.parts[0] != "swagger-ui"] == []


def test_every_api_route_is_documented(app: Flask) -> None:
    documented = {
        (method.upper(), path)
        for path, item in load_document(app)["paths"].items()
        for method in item
        if method != "parameters"
    }
    routes = {
        (method, _template(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(f"{API_PREFIX}/") and rule.rule != f"{API_PREFIX}/openapi.json"
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }

    assert routes - documented == set()


def test_docs_can_be_turned_off(database_url: str, instance_path: Path) -> None:
    client = make_test_app(database_url, instance_path, DOCS_ENABLED=False).test_client()

    assert client.get("/docs").status_code == 404


def test_docs_and_the_document_can_be_restricted_to_networks(
    database_url: str, instance_path: Path
) -> None:
    app = make_test_app(database_url, instance_path, DOCS_ALLOWED_IPS="10.0.0.0/8")
    client = app.test_client()

    for url in ("/docs", f"{API_PREFIX}/openapi.json"):
        assert client.get(url, environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 404
        assert client.get(url, environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200


def _template(rule: str) -> str:
    """``/tasks/<int(max=...):task_id>`` -> ``/tasks/{task_id}``."""
    import re

    return re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", rule)
