"""How `make test` finds its PostgreSQL and Redis (README, "The two commands"): the configured
servers when they answer, else throwaway ones it removes at the end, else one line naming what
to install."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import redis
import sqlalchemy

from app.config import normalize_database_url
from tests.support import services
from tests.support.services import ServiceUnavailableError, answers, free_port


def test_configured_servers_that_answer_are_used_as_they_are(
    monkeypatch: pytest.MonkeyPatch, postgres_server_url: str, redis_url: str
) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", postgres_server_url)
    monkeypatch.setenv("TEST_REDIS_URL", redis_url)
    assert services.ensure_postgres() == postgres_server_url
    assert services.ensure_redis() == redis_url


def test_silent_servers_are_replaced_by_throwaway_ones_removed_at_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    monkeypatch.setenv("TEST_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    at_exit: list[Callable[[], None]] = []
    monkeypatch.setattr(services.atexit, "register", at_exit.append)
    try:
        redis_url = services.ensure_redis()
        client = redis.Redis.from_url(redis_url)
        assert client.ping()
        client.close()
        database_url = services.ensure_postgres()
        engine = sqlalchemy.create_engine(
            normalize_database_url(database_url), poolclass=sqlalchemy.NullPool
        )
        with engine.connect() as connection:
            assert connection.execute(sqlalchemy.text("SELECT 1")).scalar_one() == 1
        engine.dispose()
    finally:
        for stop in at_exit:
            stop()
    assert len(at_exit) == 2, "each throwaway server is stopped at exit"
    for url in (redis_url, database_url):
        parts = urlsplit(url)
        assert not answers(parts.hostname or "", parts.port or 0), f"{url} still answers"


def test_with_no_server_to_start_it_stops_with_one_line_naming_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    monkeypatch.setenv("TEST_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setattr(services, "_postgres_bin", lambda name: None)
    monkeypatch.setattr(services.shutil, "which", lambda name: None)
    monkeypatch.setattr(services, "_apt_install", lambda *packages: False)
    for ensure, what, variable in (
        (services.ensure_postgres, "install PostgreSQL", "TEST_DATABASE_URL"),
        (services.ensure_redis, "install Redis", "TEST_REDIS_URL"),
    ):
        with pytest.raises(ServiceUnavailableError) as refused:
            ensure()
        message = str(refused.value)
        assert "\n" not in message
        assert what in message
        assert variable in message
