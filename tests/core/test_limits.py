"""Rate limits on real Redis: the API budget per caller, the 429 a client sees, who is counted
together, what is never limited, and failing open when Redis is gone."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY

from app.core.limits import (
    STORAGE_WARNING_INTERVAL_SECONDS,
    StorageErrorReporter,
    _ProbeReporter,
    on_storage_error,
    rate_limiter,
)
from tests.factories import UserFactory, access_token_for
from tests.support.rate_limits import closed_port_url, limit_keys, limited_app

TASKS = "/api/v1/tasks"  # 401 without a token: limited, and no database work
ME = "/api/v1/users/me"

AppFactory = Callable[..., AbstractContextManager[Flask]]


@pytest.fixture
def make_app(database_url: str, instance_path: Path, redis_url: str) -> AppFactory:
    """Build an app counting in the test Redis (``storage_url=`` to point elsewhere)."""

    def build(storage_url: str = redis_url, **overrides: Any) -> AbstractContextManager[Flask]:
        return limited_app(database_url, instance_path, storage_url, **overrides)

    return build


def get(app: Flask, path: str, address: str = "198.51.100.7", **kwargs: Any) -> Any:
    """GET ``path`` from TCP peer ``address``."""
    return app.test_client().get(path, environ_base={"REMOTE_ADDR": address}, **kwargs)


def test_request_over_the_budget_is_429_with_headers_in_the_error_shape(
    make_app: AppFactory, redis_url: str
) -> None:
    with make_app(RATELIMIT_DEFAULT="3/minute") as app:
        answers = [get(app, TASKS) for _ in range(3)]
        refused = get(app, TASKS)
        # The counters are in Redis, under the deployment's key prefix.
        stored = limit_keys(redis_url, app.extensions["test_key_prefix"])

    assert [answer.status_code for answer in answers] == [401, 401, 401]
    assert [answer.headers["X-RateLimit-Limit"] for answer in answers] == ["3", "3", "3"]
    assert [answer.headers["X-RateLimit-Remaining"] for answer in answers] == ["2", "1", "0"]
    assert all("Retry-After" not in answer.headers for answer in answers)

    assert refused.status_code == 429
    assert refused.mimetype == "application/json"
    body = refused.get_json()
    assert body["code"] == "rate_limited"
    assert body["status"] == 429
    assert body["message"]
    assert body["request_id"] == refused.headers["X-Request-ID"]
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    now = int(time.time())
    assert now < int(refused.headers["X-RateLimit-Reset"]) <= now + 61
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert len(stored) == 1


def test_processes_sharing_redis_share_the_budget(make_app: AppFactory) -> None:
    """Two apps on one Redis and prefix stand for two gunicorn workers (or two replicas)."""
    with make_app(RATELIMIT_DEFAULT="3/minute") as first:
        prefix = first.extensions["test_key_prefix"]
        with make_app(RATELIMIT_DEFAULT="3/minute", REDIS_KEY_PREFIX=prefix) as second:
            assert rate_limiter(second) is not rate_limiter(first)
            statuses = [get(first, TASKS).status_code, get(second, TASKS).status_code]
            statuses += [get(first, TASKS).status_code, get(second, TASKS).status_code]

    assert statuses == [401, 401, 401, 429]


def test_a_users_budget_follows_them_across_addresses_and_is_theirs_alone(
    make_app: AppFactory,
) -> None:
    with make_app(RATELIMIT_DEFAULT="3/minute") as app:
        ada, grace = UserFactory(), UserFactory()
        ada_token, grace_token = access_token_for(ada), access_token_for(grace)

        def me(token: str, address: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            return int(get(app, ME, address, headers=headers).status_code)

        ada_statuses = [me(ada_token, f"203.0.113.{n}") for n in (1, 2, 3, 4)]
        grace_status = me(grace_token, "203.0.113.1")
        # Unauthenticated callers from Ada's last address are counted by address, apart.
        anonymous = get(app, TASKS, "203.0.113.4").status_code

    assert ada_statuses == [200, 200, 200, 429]
    assert grace_status == 200
    assert anonymous == 401


def test_an_invalid_token_is_counted_by_address(make_app: AppFactory) -> None:
    """Forged tokens cannot mint fresh budgets: only a verified token names a user."""
    with make_app(RATELIMIT_DEFAULT="2/minute") as app:
        statuses = [
            get(app, TASKS, headers={"Authorization": f"Bearer forged-{n}"}).status_code
            for n in range(3)
        ]

    assert statuses == [401, 401, 429]


def test_health_docs_and_the_document_are_never_limited(make_app: AppFactory) -> None:
    with make_app(RATELIMIT_DEFAULT="1/minute") as app:
        paths = ("/health/live", "/api/v1/openapi.json", "/docs", "/static/swagger-ui/init.js")
        for path in (*paths, "/metrics"):
            # /metrics answers its allow-list only (loopback by default).
            responses = [get(app, path, "127.0.0.1") for _ in range(3)]
            assert [response.status_code for response in responses] == [200] * 3, path
            assert all("X-RateLimit-Limit" not in response.headers for response in responses)


def test_spoofed_forwarded_for_does_not_escape_the_address_limit(make_app: AppFactory) -> None:
    with make_app(RATELIMIT_DEFAULT="2/minute", PROXY_FIX_X_FOR=0) as app:
        statuses = [
            get(app, TASKS, headers={"X-Forwarded-For": f"192.0.2.{n}"}).status_code
            for n in range(3)
        ]

    assert statuses == [401, 401, 429]


def test_behind_one_proxy_the_address_it_saw_is_the_key(make_app: AppFactory) -> None:
    proxy = "10.0.0.2"
    with make_app(RATELIMIT_DEFAULT="2/minute", PROXY_FIX_X_FOR=1) as app:

        def via_proxy(forwarded_for: str) -> int:
            headers = {"X-Forwarded-For": forwarded_for}
            return int(get(app, TASKS, proxy, headers=headers).status_code)

        # The client typed the first entry; the proxy appended the address it saw.
        client = [via_proxy(f"192.0.2.{n}, 203.0.113.9") for n in range(3)]
        other_client = via_proxy("192.0.2.1, 203.0.113.10")

    assert client == [401, 401, 429]
    assert other_client == 401


def test_redis_unreachable_serves_requests_logs_and_counts(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    failures: list[int] = []
    metric = "rate_limit_storage_errors_total"
    counted_before = REGISTRY.get_sample_value(metric) or 0.0
    caplog.set_level(logging.WARNING, logger="app.core.limits")
    with make_app(storage_url=closed_port_url(), RATELIMIT_DEFAULT="3/minute") as app:
        on_storage_error(app, lambda: failures.append(1))
        answers = [get(app, TASKS) for _ in range(4)]

    # Served, not a 500: the first request already fell back to this process's counters,
    # which hold the same limits.
    assert [answer.status_code for answer in answers] == [401, 401, 401, 429]
    assert answers[0].headers["X-RateLimit-Remaining"] == "2"
    assert failures == [1]
    assert REGISTRY.get_sample_value(metric) == counted_before + 1  # the Prometheus counter
    warnings = [r for r in caplog.records if r.name == "app.core.limits"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert getattr(warnings[0], "event", None) == "rate_limit_storage_error"


def test_storage_warnings_are_throttled_but_every_failure_is_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counted: list[int] = []
    report = StorageErrorReporter([lambda: counted.append(1)], "redis")
    caplog.set_level(logging.WARNING, logger="app.core.limits")

    for _ in range(5):
        report()

    assert len(counted) == 5
    assert len([r for r in caplog.records if r.name == "app.core.limits"]) == 1
    assert STORAGE_WARNING_INTERVAL_SECONDS >= 1


def test_a_failing_listener_does_not_break_the_report(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise RuntimeError("metrics are down")

    counted: list[int] = []
    StorageErrorReporter([broken, lambda: counted.append(1)], "redis")()

    assert counted == [1]


class FakeStorage:
    """A storage whose health probe answers ``healthy``."""

    def __init__(self, healthy: bool) -> None:
        self.healthy = healthy
        self.key_prefix = "fake"

    def check(self) -> bool:
        return self.healthy


def test_failed_recovery_probes_are_reported() -> None:
    reports: list[int] = []
    down = _ProbeReporter(FakeStorage(healthy=False), lambda: reports.append(1))
    up = _ProbeReporter(FakeStorage(healthy=True), lambda: reports.append(1))

    assert down.check() is False
    assert up.check() is True
    assert reports == [1]
    assert down.key_prefix == "fake"  # everything else reaches the storage itself


def test_rate_limiting_can_be_turned_off(make_app: AppFactory) -> None:
    with make_app(RATELIMIT_DEFAULT="1/minute", RATELIMIT_ENABLED=False) as app:
        responses = [get(app, TASKS) for _ in range(3)]
        spec = get(app, "/api/v1/openapi.json").get_json()

    assert [response.status_code for response in responses] == [401] * 3
    assert all("X-RateLimit-Limit" not in response.headers for response in responses)
    assert "429" not in spec["paths"][TASKS]["get"]["responses"]


def test_headers_can_be_turned_off(make_app: AppFactory) -> None:
    with make_app(RATELIMIT_DEFAULT="1/minute", RATELIMIT_HEADERS_ENABLED=False) as app:
        responses = [get(app, TASKS) for _ in range(2)]

    assert [response.status_code for response in responses] == [401, 429]
    assert not any(name.startswith("X-RateLimit") for name, _ in responses[1].headers.items())


def test_the_documented_429_names_the_limits_in_force(make_app: AppFactory) -> None:
    with make_app(RATELIMIT_DEFAULT="7/minute", RATELIMIT_LOGIN_PER_ACCOUNT="4/hour") as app:
        spec = get(app, "/api/v1/openapi.json").get_json()

    login = spec["paths"]["/api/v1/auth/login"]["post"]["responses"]["429"]
    assert "7/minute per user (else per client address) across the API" in login["description"]
    assert "4/hour per account" in login["description"]
    assert set(login["headers"]) == {
        "Retry-After",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
    }
    tasks = spec["paths"][TASKS]["get"]["responses"]["429"]
    assert "per account" not in tasks["description"]


@pytest.fixture
def no_redis_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No REDIS_URL leaks in from the shell."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("RATELIMIT_STORAGE_URL", raising=False)


def test_without_redis_the_counters_are_in_process_memory(
    database_url: str, instance_path: Path, no_redis_env: None
) -> None:
    from tests.conftest import make_test_app

    app = make_test_app(database_url, instance_path, RATELIMIT_DEFAULT="1/minute")

    assert app.extensions["settings"].ratelimit_storage_url == "memory://"
    client = app.test_client()
    assert [client.get(TASKS).status_code for _ in range(2)] == [401, 429]


def test_one_redis_call_per_limited_request_headers_included(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_app(RATELIMIT_DEFAULT="50/minute") as app:
        get(app, "/api/v1/tasks")  # loads the script into Redis
        redis_client = rate_limiter(app).limiter.storage.get_connection()
        commands: list[str] = []
        execute = redis_client.execute_command

        def counting(*args: Any, **kwargs: Any) -> Any:
            commands.append(str(args[0]))
            return execute(*args, **kwargs)

        monkeypatch.setattr(redis_client, "execute_command", counting)
        responses = [get(app, "/api/v1/tasks") for _ in range(3)]

    # The hit brings back the count and the TTL; the headers need no GET or TTL of their own.
    assert commands.count("EVALSHA") == 3
    assert not {"GET", "TTL"} & set(commands)
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["48", "47", "46"]
    assert all(int(r.headers["X-RateLimit-Reset"]) >= int(time.time()) for r in responses)
