"""The client address behind proxies (``PROXY_FIX_X_FOR``) and the docs allow-list."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request

from app.core.client_address import address_in
from tests.conftest import make_test_app

PROXY = "10.0.0.2"


def app_reporting_the_address(database_url: str, instance_path: Path, **overrides: Any) -> Flask:
    """An app with an extra route answering ``request.remote_addr`` and the scheme."""
    app = make_test_app(database_url, instance_path, **overrides)
    app.add_url_rule(
        "/test/address", "test_address", lambda: f"{request.remote_addr} {request.scheme}"
    )
    return app


def seen(app: Flask, peer: str, headers: dict[str, str]) -> str:
    response = app.test_client().get(
        "/test/address", environ_base={"REMOTE_ADDR": peer}, headers=headers
    )
    return response.get_data(as_text=True)


def test_by_default_forwarded_headers_are_ignored(database_url: str, instance_path: Path) -> None:
    app = app_reporting_the_address(database_url, instance_path)

    spoofed = {"X-Forwarded-For": "192.0.2.66", "X-Forwarded-Proto": "https"}

    assert seen(app, "203.0.113.5", spoofed) == "203.0.113.5 http"


def test_one_trusted_proxy_gives_the_address_it_saw(database_url: str, instance_path: Path) -> None:
    app = app_reporting_the_address(
        database_url, instance_path, PROXY_FIX_X_FOR=1, PROXY_FIX_X_PROTO=1
    )

    # The client sent "192.0.2.66"; nginx appended the address it accepted the connection from.
    headers = {"X-Forwarded-For": "192.0.2.66, 203.0.113.5", "X-Forwarded-Proto": "https"}

    assert seen(app, PROXY, headers) == "203.0.113.5 https"
    assert seen(app, PROXY, {}) == f"{PROXY} http"


def test_two_trusted_proxies_skip_both(database_url: str, instance_path: Path) -> None:
    app = app_reporting_the_address(database_url, instance_path, PROXY_FIX_X_FOR=2)

    headers = {"X-Forwarded-For": "192.0.2.66, 203.0.113.5, 10.0.0.1"}

    assert seen(app, PROXY, headers).split()[0] == "203.0.113.5"


@pytest.mark.parametrize(
    ("address", "inside"),
    [
        ("10.1.2.3", True),
        ("::ffff:10.1.2.3", True),  # IPv4 seen through an IPv6 socket
        ("2001:db8::1", True),
        ("192.0.2.1", False),
        ("", False),
        (None, False),
        ("not-an-address", False),
    ],
)
def test_address_in(address: str | None, inside: bool) -> None:
    networks = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")]

    assert address_in(address, networks) is inside


DOCS_URLS = ("/docs", "/api/v1/openapi.json", "/static/swagger-ui/swagger-ui.css")


def test_docs_answer_only_the_allowed_networks(database_url: str, instance_path: Path) -> None:
    app = make_test_app(
        database_url, instance_path, DOCS_ALLOWED_IPS="10.0.0.0/8, 127.0.0.1", PROXY_FIX_X_FOR=1
    )
    client = app.test_client()

    def status(url: str, forwarded_for: str) -> int:
        headers = {"X-Forwarded-For": forwarded_for}
        response = client.get(url, headers=headers, environ_base={"REMOTE_ADDR": PROXY})
        response.close()
        return response.status_code

    for url in DOCS_URLS:
        assert status(url, "10.20.30.40") == 200, url
        assert status(url, "127.0.0.1") == 200, url
        # A client claiming an allowed address in front of its own gains nothing.
        assert status(url, "10.20.30.40, 198.51.100.7") == 404, url


def test_hidden_docs_look_like_any_unknown_url(database_url: str, instance_path: Path) -> None:
    app = make_test_app(database_url, instance_path, DOCS_ALLOWED_IPS="10.0.0.0/8")
    client = app.test_client()

    hidden = client.get("/docs", environ_base={"REMOTE_ADDR": "198.51.100.7"})
    unknown = client.get("/no-such-page", environ_base={"REMOTE_ADDR": "198.51.100.7"})

    assert hidden.status_code == unknown.status_code == 404
    assert hidden.mimetype == unknown.mimetype == "application/json"
    hidden_body, unknown_body = hidden.get_json(), unknown.get_json()
    hidden_body.pop("request_id")
    unknown_body.pop("request_id")
    assert hidden_body == unknown_body
    # The API itself is unaffected.
    assert (
        client.get("/health/live", environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code == 200
    )


def test_without_an_allow_list_everyone_reads_the_docs(
    database_url: str, instance_path: Path
) -> None:
    app = make_test_app(database_url, instance_path)
    client = app.test_client()

    for url in DOCS_URLS:
        response = client.get(url, environ_base={"REMOTE_ADDR": "198.51.100.7"})
        response.close()
        assert response.status_code == 200, url
