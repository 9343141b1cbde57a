"""The shared schema building blocks: Text, StrictSchema and the page arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import marshmallow as ma
import pytest
from flask import Flask

from app.core.api import Blueprint
from app.core.schemas import PageArgs, StrictSchema, Text, page_meta
from tests.conftest import make_test_app


class Note(StrictSchema):
    """A schema with a single-line and a multi-line text field."""

    title = Text(required=True)
    body = Text(multiline=True)


def test_text_refuses_control_characters() -> None:
    for bad in ["nul\x00", "bell\x07", "escape\x1b[31m", "delete\x7f", "new\nline"]:
        with pytest.raises(ma.ValidationError) as caught:
            Note().load({"title": bad})
        assert caught.value.messages == {"title": ["Must not contain control characters."]}


def test_text_refuses_a_line_break_at_the_very_end() -> None:
    # The check is a regex: a "$" that stops before a final newline must not let it through.
    for bad in ["title\n", "title\r\n", "\n"]:
        with pytest.raises(ma.ValidationError) as caught:
            Note().load({"title": bad})
        assert caught.value.messages == {"title": ["Must not contain control characters."]}
    with pytest.raises(ma.ValidationError):
        Note().load({"title": "t", "body": "end\x00\n"})


def test_multiline_text_allows_line_breaks_and_tabs_only() -> None:
    assert Note().load({"title": "t", "body": "a\r\n\tb"})["body"] == "a\r\n\tb"
    with pytest.raises(ma.ValidationError):
        Note().load({"title": "t", "body": "a\x00b"})


def test_text_accepts_unicode() -> None:
    assert Note().load({"title": "Grüße, 世界 🎉"})["title"] == "Grüße, 世界 🎉"


def test_strict_schema_refuses_unknown_fields() -> None:
    with pytest.raises(ma.ValidationError) as caught:
        Note().load({"title": "t", "owner_id": 1})
    assert caught.value.messages == {"owner_id": ["Unknown field."]}


@pytest.mark.parametrize(
    ("total", "page_size", "pages"), [(0, 20, 0), (1, 20, 1), (20, 20, 1), (21, 20, 2)]
)
def test_page_meta_counts_pages(total: int, page_size: int, pages: int) -> None:
    meta = page_meta(page=1, page_size=page_size, total=total)
    assert meta == {"page": 1, "page_size": page_size, "total": total, "pages": pages}


def page_app(database_url: str, instance_path: Path, **overrides: Any) -> Flask:
    """An app with a test-only route echoing the parsed page arguments."""
    app = make_test_app(database_url, instance_path, **overrides)
    blp = Blueprint("pages", __name__, url_prefix="/pages")

    @blp.route("")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200)
    def pages(args: dict[str, Any]) -> dict[str, Any]:
        return args

    app.extensions["api"].register_blueprint(blp, url_prefix="/api/v1/pages")
    return app


def test_page_arguments_default_to_the_configured_size(
    database_url: str, instance_path: Path
) -> None:
    client = page_app(database_url, instance_path).test_client()
    assert client.get("/api/v1/pages").get_json() == {"page": 1, "page_size": 20}
    assert client.get("/api/v1/pages?page_size=100").status_code == 200
    response = client.get("/api/v1/pages?page_size=101")
    assert response.status_code == 422
    assert response.get_json()["errors"]["query"]["page_size"] == ["Must be at most 100."]


def test_page_size_settings_are_honoured(database_url: str, instance_path: Path) -> None:
    app = page_app(database_url, instance_path, DEFAULT_PAGE_SIZE=5, MAX_PAGE_SIZE=7)
    client = app.test_client()
    assert client.get("/api/v1/pages").get_json() == {"page": 1, "page_size": 5}
    assert client.get("/api/v1/pages?page_size=7").get_json()["page_size"] == 7
    assert client.get("/api/v1/pages?page_size=8").status_code == 422


@pytest.mark.parametrize("query", ["page=0", "page_size=0", "page=abc", "page_size=-1"])
def test_bad_page_arguments_are_422(database_url: str, instance_path: Path, query: str) -> None:
    client = page_app(database_url, instance_path).test_client()
    response = client.get(f"/api/v1/pages?{query}")
    assert response.status_code == 422
    assert "query" in response.get_json()["errors"]
