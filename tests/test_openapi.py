"""The OpenAPI document and the offline Swagger UI.

Every check walks whatever operations and schemas exist, so new endpoints are held to the same
rules the moment they are registered, and a failure lists every offender at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from app.core.api import BEARER_SCHEME

API_PREFIX = "/api/v1"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
ERROR_SCHEMA_REF = "#/components/schemas/Error"


@pytest.fixture(scope="module")
def spec(app: Flask) -> dict[str, Any]:
    """The document as served."""
    response = app.test_client().get(f"{API_PREFIX}/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document: dict[str, Any] = response.get_json()
    return document


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) for every operation in the document."""
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, operation


def api_operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The operations under /api/v1 (health probes excluded)."""
    for method, path, operation in operations(spec):
        if path.startswith(f"{API_PREFIX}/"):
            yield method, path, operation


def is_secured(operation: dict[str, Any]) -> bool:
    """True when the operation requires the bearer token."""
    return any(BEARER_SCHEME in requirement for requirement in operation.get("security", []))


def test_document_is_valid_openapi(spec: dict[str, Any]) -> None:
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"]
    assert spec["info"]["description"]


def test_the_api_has_operations(spec: dict[str, Any]) -> None:
    assert any(True for _ in api_operations(spec)), "no /api/v1 operation is documented"


def test_every_operation_has_summary_tag_and_operation_id(spec: dict[str, Any]) -> None:
    problems = []
    seen: dict[str, str] = {}
    declared_tags = {tag["name"] for tag in spec.get("tags", [])}
    for method, path, operation in operations(spec):
        where = f"{method} {path}"
        if not operation.get("summary", "").strip():
            problems.append(f"{where}: no summary (give the view a one-line docstring)")
        tags = operation.get("tags") or []
        if not tags:
            problems.append(f"{where}: no tag")
        problems.extend(
            f"{where}: tag {tag!r} not declared" for tag in tags if tag not in declared_tags
        )
        operation_id = operation.get("operationId")
        if not operation_id:
            problems.append(f"{where}: no operationId (@blp.doc(operationId=...))")
        elif operation_id in seen:
            problems.append(
                f"{where}: operationId {operation_id!r} also used by {seen[operation_id]}"
            )
        else:
            seen[operation_id] = where
    assert problems == []


def test_secured_operations_document_401(spec: dict[str, Any]) -> None:
    problems = [
        f"{method} {path}"
        for method, path, operation in api_operations(spec)
        if is_secured(operation) and "401" not in operation["responses"]
    ]
    assert problems == []


def test_operations_with_a_body_document_422(spec: dict[str, Any]) -> None:
    problems = [
        f"{method} {path}"
        for method, path, operation in api_operations(spec)
        if "requestBody" in operation and "422" not in operation["responses"]
    ]
    assert problems == []


def test_operations_on_an_item_document_404(spec: dict[str, Any]) -> None:
    problems = [
        f"{method} {path}"
        for method, path, operation in api_operations(spec)
        if "{" in path and "404" not in operation["responses"]
    ]
    assert problems == []


def test_every_api_operation_documents_429_with_its_headers(spec: dict[str, Any]) -> None:
    """Every API operation counts against a rate limit (app.core.limits)."""
    problems = []
    for method, path, operation in api_operations(spec):
        response = resolve(spec, operation["responses"].get("429", {}))
        if not response:
            problems.append(f"{method} {path}: no 429")
        elif not {"Retry-After", "X-RateLimit-Limit"} <= set(response.get("headers", {})):
            problems.append(f"{method} {path}: 429 without its headers")
    assert problems == []


def test_every_api_operation_documents_an_error_response(spec: dict[str, Any]) -> None:
    problems = [
        f"{method} {path}"
        for method, path, operation in api_operations(spec)
        if not any(status.startswith("4") for status in operation["responses"])
    ]
    assert problems == []


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node``, or the component its ``$ref`` points at."""
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = spec["components"][section][name]
    return node


def test_api_error_responses_use_the_error_shape_with_an_example(spec: dict[str, Any]) -> None:
    problems = []
    for method, path, operation in api_operations(spec):
        for status, reference in operation["responses"].items():
            response = resolve(spec, reference)
            if status[0] not in "45":
                continue
            content = response.get("content", {}).get("application/json", {})
            if content.get("schema", {}).get("$ref") != ERROR_SCHEMA_REF:
                problems.append(f"{method} {path} {status}: not the Error schema")
            elif content.get("example", {}).get("status") != int(status):
                problems.append(f"{method} {path} {status}: no matching example")
    assert problems == []


def test_request_and_response_bodies_use_named_schemas(spec: dict[str, Any]) -> None:
    """Inline schemas get no examples in Swagger UI; every body refers to a component."""
    problems = []
    for method, path, operation in api_operations(spec):
        bodies = [("request", operation.get("requestBody", {}))]
        bodies += [(status, response) for status, response in operation["responses"].items()]
        for label, body in bodies:
            schema = body.get("content", {}).get("application/json", {}).get("schema")
            if schema is not None and "$ref" not in schema:
                problems.append(f"{method} {path} {label}: inline schema")
    assert problems == []


def property_lacks_example(schema: dict[str, Any]) -> bool:
    """True when a property has no example of its own and none through a referenced schema."""
    if "example" in schema or "$ref" in schema:
        return False
    if "allOf" in schema and all("$ref" in part for part in schema["allOf"]):
        return False
    items = schema.get("items")
    return not (schema.get("type") == "array" and isinstance(items, dict) and "$ref" in items)


def test_every_schema_property_has_an_example(spec: dict[str, Any]) -> None:
    problems = [
        f"{name}.{field}"
        for name, schema in spec["components"]["schemas"].items()
        for field, prop in schema.get("properties", {}).items()
        if property_lacks_example(prop)
    ]
    assert problems == [], "add metadata={'example': ...} to these fields"


def test_query_and_path_parameters_have_examples_or_schemas(spec: dict[str, Any]) -> None:
    problems = []
    for method, path, operation in api_operations(spec):
        for parameter in operation.get("parameters", []):
            if "$ref" in parameter:
                continue
            schema = parameter.get("schema", {})
            if parameter["in"] == "path":
                if not schema.get("type"):
                    problems.append(f"{method} {path}: path parameter {parameter['name']} untyped")
            elif (
                parameter["in"] == "query"
                and not parameter.get("required")
                and (parameter.get("description") and schema.get("type"))
            ):
                # An optional filter is described, not exemplified: Swagger UI pre-fills a
                # parameter's example into "Try it out", silently narrowing the list.
                continue
            elif "example" not in parameter and "example" not in schema and "enum" not in schema:
                items = schema.get("items", {})
                if "example" not in items and "enum" not in items:
                    problems.append(f"{method} {path}: parameter {parameter['name']} no example")
    assert problems == []


def test_bearer_scheme_is_declared(spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"][BEARER_SCHEME]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert scheme["bearerFormat"] == "JWT"


def test_security_requirements_name_declared_schemes(spec: dict[str, Any]) -> None:
    declared = set(spec["components"]["securitySchemes"])
    used = {
        name
        for _, _, operation in operations(spec)
        for requirement in operation.get("security", [])
        for name in requirement
    }
    assert used <= declared
    assert BEARER_SCHEME in used, "no operation requires the bearer token"


def test_error_schema_is_the_documented_shape(spec: dict[str, Any]) -> None:
    error = spec["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"code", "status", "message", "errors", "request_id"}
    assert {"code", "status", "message"} <= set(error["required"])


# --- Swagger UI ------------------------------------------------------------------------------


class AssetCollector(HTMLParser):
    """Collects every URL a page loads (scripts, stylesheets, images, icons)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Record src/href of tags that load something."""
        attributes = dict(attrs)
        if tag in {"script", "img", "iframe"} and attributes.get("src"):
            self.urls.append(str(attributes["src"]))
        if tag == "link" and attributes.get("href"):
            self.urls.append(str(attributes["href"]))
        self._in_script = tag == "script" and not attributes.get("src")

    def handle_endtag(self, tag: str) -> None:
        """Leave a script."""
        self._in_script = False

    def handle_data(self, data: str) -> None:
        """Keep inline script text."""
        if self._in_script:
            self.inline_scripts.append(data)


@pytest.fixture(scope="module")
def docs_page(app: Flask) -> AssetCollector:
    """/docs, parsed."""
    response = app.test_client().get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = AssetCollector()
    page.feed(response.get_data(as_text=True))
    return page


def test_docs_load_only_bundled_assets(docs_page: AssetCollector) -> None:
    assert docs_page.urls, "the page loads no assets"
    assert all(url.startswith("/static/swagger-ui/") for url in docs_page.urls), docs_page.urls
    assert any(url.endswith("swagger-ui-bundle.js") for url in docs_page.urls)
    assert any(url.endswith("swagger-ui.css") for url in docs_page.urls)
    inline = "".join(docs_page.inline_scripts)
    assert "http://" not in inline
    assert "https://" not in inline


def test_docs_point_at_the_api_document(docs_page: AssetCollector) -> None:
    inline = "".join(docs_page.inline_scripts)
    assert f'"{API_PREFIX}/openapi.json"' in inline


def test_docs_assets_are_served(docs_page: AssetCollector, app: Flask) -> None:
    client: FlaskClient = app.test_client()
    for url in docs_page.urls:
        response = client.get(url)
        assert response.status_code == 200, url
        # The vendored Swagger UI files are real, not stubs (init.js is the project's own and
        # the favicon is small).
        small = url.endswith(("/init.js", "/favicon-32x32.png"))
        assert len(response.get_data()) > (100 if small else 1000), url
        response.close()


def test_docs_run_no_inline_script(docs_page: AssetCollector) -> None:
    """The page's Content-Security-Policy allows scripts from files only; its settings are
    JSON data, which browsers never run."""
    assert any(url.endswith("/init.js") for url in docs_page.urls)
    for text in docs_page.inline_scripts:
        if text.strip():
            json.loads(text)
