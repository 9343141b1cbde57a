"""Fixtures of the edge tests: a live stack served by gunicorn behind nginx."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.factories import DEFAULT_PASSWORD
from tests.support.edge import Gunicorn, Nginx, Response, http_request, start_gunicorn, start_nginx
from tests.support.live import LiveStack


@dataclass
class Edge:
    """gunicorn (3 workers) behind nginx, on the stack's database and Redis."""

    stack: LiveStack
    gunicorn: Gunicorn
    nginx: Nginx

    def call(self, method: str, path: str, **options: Any) -> Response:
        """A request through the load balancer, from the test client's address."""
        return http_request(self.nginx.port, method, path, **options)

    def sign_up(self, email: str) -> str:
        """Register and log in through the load balancer; an access token."""
        credentials = {"email": email, "password": DEFAULT_PASSWORD}
        assert self.call("POST", "/api/v1/auth/register", body=credentials).status == 201
        login = self.call("POST", "/api/v1/auth/login", body=credentials)
        assert login.status == 200, login.body
        token: str = login.json()["access_token"]
        return token


@pytest.fixture
def make_edge(make_live_stack: Callable[..., LiveStack]) -> Callable[..., Edge]:
    """Build an edge whose processes get the settings ``overrides`` (stopped after the test)."""

    def build(**overrides: str) -> Edge:
        stack = make_live_stack(**overrides)
        server = start_gunicorn(stack)
        return Edge(stack, server, start_nginx(stack, server.port))

    return build
