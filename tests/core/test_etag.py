"""Entity tags: parsing If-Match into versions, and conditional GET responses."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from flask import Flask, Response

from app.core.etag import IfMatchHeader, conditional_json, version_etag


def test_a_version_etag_is_the_quoted_number() -> None:
    assert version_etag(12) == '"12"'


@pytest.mark.parametrize(
    ("header", "versions"),
    [
        ('"3"', frozenset({3})),
        ('"3", "4"', frozenset({3, 4})),
        ("*", None),
        ('W/"3"', frozenset()),  # If-Match compares strongly: a weak tag never matches
        ('"three"', frozenset()),
        ('"' + "9" * 30 + '"', frozenset()),
        ("", frozenset()),
    ],
)
def test_if_match_becomes_the_accepted_versions(header: str, versions: frozenset[int]) -> None:
    assert IfMatchHeader().load({"If-Match": header}) == {"if_match": versions}


def test_no_if_match_means_no_precondition() -> None:
    assert IfMatchHeader().load({}) == {"if_match": None}


def respond(
    app: Flask,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    response: Response | None = None,
) -> Response:
    """``conditional_json`` of ``response`` (default: a small JSON 200) for such a request."""
    with app.test_request_context("/", method=method, headers=dict(headers or {})):
        return conditional_json(response or Response('{"a": 1}', mimetype="application/json"))


def test_a_response_gets_a_weak_etag_from_its_body(app: Flask) -> None:
    first = respond(app)
    same_body = respond(app)
    other_body = respond(app, response=Response('{"a": 2}', mimetype="application/json"))

    assert first.headers["ETag"].startswith('W/"')
    assert first.headers["ETag"] == same_body.headers["ETag"]
    assert first.headers["ETag"] != other_body.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, no-cache"
    assert "Authorization" in first.headers["Vary"]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_matching_if_none_match_gives_a_bodiless_304(app: Flask, method: str) -> None:
    etag = respond(app).headers["ETag"]

    response = respond(app, method=method, headers={"If-None-Match": f'"other", {etag}'})

    assert response.status_code == 304
    assert response.get_data() == b""
    assert response.headers["ETag"] == etag
    assert "Content-Type" not in response.headers


def test_if_none_match_compares_weakly(app: Flask) -> None:
    strong = Response("{}", mimetype="application/json", headers={"ETag": '"7"'})

    response = respond(app, headers={"If-None-Match": 'W/"7"'}, response=strong)

    assert (response.status_code, response.headers["ETag"]) == (304, '"7"')


def test_a_stale_if_none_match_gets_the_full_response(app: Flask) -> None:
    response = respond(app, headers={"If-None-Match": 'W/"stale"'})

    assert (response.status_code, response.get_data()) == (200, b'{"a": 1}')


def test_only_successful_reads_are_conditional(app: Flask) -> None:
    created = Response("{}", status=201, mimetype="application/json")
    posted = respond(app, method="POST", headers={"If-None-Match": "*"})
    failed = respond(app, headers={"If-None-Match": "*"}, response=created)

    assert (posted.status_code, "ETag" in posted.headers) == (200, False)
    assert (failed.status_code, "ETag" in failed.headers) == (201, False)
