"""The stricter limits of the authentication routes, on real Redis: login per address and per
account, registration, refresh and password reset requests."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app.core.limits import on_storage_error
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.support.rate_limits import limit_keys, limited_app

LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"
REFRESH = "/api/v1/auth/refresh"
RESET = "/api/v1/auth/password-reset"

AppFactory = Callable[..., AbstractContextManager[Flask]]


@pytest.fixture
def make_app(database_url: str, instance_path: Path, redis_url: str) -> AppFactory:
    """Build an app counting in the test Redis with ``overrides``."""

    def build(**overrides: Any) -> AbstractContextManager[Flask]:
        return limited_app(database_url, instance_path, redis_url, **overrides)

    return build


def post(app: Flask, path: str, body: Any, address: str = "198.51.100.7") -> Any:
    """POST JSON ``body`` from TCP peer ``address``."""
    return app.test_client().post(path, json=body, environ_base={"REMOTE_ADDR": address})


def test_login_per_account_holds_across_addresses(make_app: AppFactory, redis_url: str) -> None:
    with make_app(RATELIMIT_LOGIN_PER_ACCOUNT="2/minute") as app:
        UserFactory(email="ada@example.com")
        # Password guessing spread over addresses, in any letter case and spacing.
        spellings = ["ada@example.com", " ADA@example.com", "Ada@Example.com "]
        statuses = [
            post(
                app, LOGIN, {"email": email, "password": "wrong-guess"}, f"192.0.2.{n}"
            ).status_code
            for n, email in enumerate(spellings)
        ]
        # The real owner is refused too while the window lasts (the price of this limit),
        # but other accounts are not.
        owner = post(app, LOGIN, {"email": "ada@example.com", "password": DEFAULT_PASSWORD})
        UserFactory(email="grace@example.com")
        other = post(app, LOGIN, {"email": "grace@example.com", "password": DEFAULT_PASSWORD})
        keys = limit_keys(redis_url, app.extensions["test_key_prefix"])

    assert statuses == [401, 401, 429]
    assert owner.status_code == 429
    assert other.status_code == 200
    # Redis keys carry a keyed hash of the email, never the address itself.
    assert keys
    assert not any("example.com" in key for key in keys)


def test_login_per_address_holds_across_accounts(make_app: AppFactory) -> None:
    with make_app(RATELIMIT_LOGIN_PER_IP="2/minute") as app:
        statuses = [
            post(app, LOGIN, {"email": f"user{n}@example.com", "password": "x" * 8}).status_code
            for n in range(3)
        ]
        elsewhere = post(app, LOGIN, {"email": "user9@example.com", "password": "x" * 8}, "::1")

    assert statuses == [401, 401, 429]
    assert elsewhere.status_code == 401


def test_the_login_limit_is_checked_before_the_password(make_app: AppFactory) -> None:
    """A refused attempt costs no password hash and reveals nothing: even the right password
    gets the 429."""
    with make_app(RATELIMIT_LOGIN_PER_IP="1/minute") as app:
        UserFactory(email="ada@example.com")
        first = post(app, LOGIN, {"email": "nobody@example.com", "password": "x" * 8})
        right = post(app, LOGIN, {"email": "ada@example.com", "password": DEFAULT_PASSWORD})

    assert first.status_code == 401
    assert right.status_code == 429
    assert "access_token" not in right.get_json()


@pytest.mark.parametrize(
    "body",
    [
        {"password": "x" * 8},  # no email: webargs answers 422
        {"email": 42, "password": "x" * 8},
        ["not", "an", "object"],
    ],
)
def test_a_body_without_an_email_skips_the_account_limit_only(
    make_app: AppFactory, body: Any
) -> None:
    failures: list[int] = []
    with make_app(RATELIMIT_LOGIN_PER_ACCOUNT="1/minute", RATELIMIT_LOGIN_PER_IP="3/minute") as app:
        on_storage_error(app, lambda: failures.append(1))
        statuses = [post(app, LOGIN, body).status_code for _ in range(4)]

    assert statuses == [422, 422, 422, 429]
    assert failures == []  # an unreadable key is not a storage failure


def test_a_body_too_large_to_read_is_413_not_a_storage_failure(make_app: AppFactory) -> None:
    failures: list[int] = []
    with make_app(RATELIMIT_LOGIN_PER_ACCOUNT="1/minute", MAX_CONTENT_LENGTH=1024) as app:
        on_storage_error(app, lambda: failures.append(1))
        response = post(app, LOGIN, {"email": "a@example.com", "password": "x" * 4096})

    assert response.status_code == 413
    assert failures == []


def test_register_per_address(make_app: AppFactory) -> None:
    with make_app(RATELIMIT_REGISTER_PER_IP="2/minute") as app:
        statuses = [
            post(app, REGISTER, {"email": f"new{n}@example.com", "password": "p" * 10}).status_code
            for n in range(3)
        ]

    assert statuses == [201, 201, 429]


def test_refresh_per_address(make_app: AppFactory) -> None:
    with make_app(RATELIMIT_REFRESH_PER_IP="2/minute") as app:
        statuses = [
            post(app, REFRESH, {"refresh_token": f"not-a-token-{n}"}).status_code for n in range(3)
        ]

    assert statuses == [401, 401, 429]


def test_password_reset_per_target_email_holds_across_addresses(make_app: AppFactory) -> None:
    with make_app(RATELIMIT_PASSWORD_RESET_PER_EMAIL="2/minute") as app:
        statuses = [
            post(app, RESET, {"email": "Victim@Example.com"}, f"192.0.2.{n}").status_code
            for n in range(3)
        ]
        other = post(app, RESET, {"email": "someone-else@example.com"}, "192.0.2.9")

    assert statuses == [202, 202, 429]
    assert other.status_code == 202


def test_password_reset_per_address(make_app: AppFactory) -> None:
    with make_app(RATELIMIT_PASSWORD_RESET_PER_IP="2/minute") as app:
        statuses = [
            post(app, RESET, {"email": f"person{n}@example.com"}).status_code for n in range(3)
        ]

    assert statuses == [202, 202, 429]


def test_each_route_has_its_own_counter(make_app: AppFactory) -> None:
    """The login limit per address does not spend the registration one, and vice versa."""
    with make_app(RATELIMIT_LOGIN_PER_IP="1/minute", RATELIMIT_REGISTER_PER_IP="1/minute") as app:
        login = post(app, LOGIN, {"email": "a@example.com", "password": "x" * 8})
        register = post(app, REGISTER, {"email": "b@example.com", "password": "p" * 10})

    assert (login.status_code, register.status_code) == (401, 201)
