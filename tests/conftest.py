"""Fixtures: a real PostgreSQL database migrated to head, an app bound to it, and a SAVEPOINT
per test so tests stay independent and fast."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy.orm import Session

from app import create_app
from tests.support.database import migrated_database, rolled_back_transaction
from tests.support.services import (
    ManagedServer,
    ServiceUnavailableError,
    ensure_postgres,
    ensure_redis,
)


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """A PostgreSQL server: the one configured, else a throwaway one (never skipped)."""
    try:
        return ensure_postgres()
    except ServiceUnavailableError as exc:
        pytest.exit(str(exc), returncode=3)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis server: the one configured, else a throwaway one (never skipped)."""
    try:
        return ensure_redis()
    except ServiceUnavailableError as exc:
        pytest.exit(str(exc), returncode=3)


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh database for this run, migrated to head by Alembic (as production is)."""
    with migrated_database(postgres_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def instance_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app's instance folder for this run."""
    return tmp_path_factory.mktemp("instance")


def make_test_app(database_url: str, instance_path: Path, **overrides: Any) -> Flask:
    """An app of the testing profile on ``database_url`` with ``overrides``."""
    config = {
        "APP_ENV": "testing",
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(instance_path),
        **overrides,
    }
    return create_app(config)


@pytest.fixture(scope="session")
def app(database_url: str, instance_path: Path) -> Flask:
    """The app under test (testing profile, real PostgreSQL)."""
    return make_test_app(database_url, instance_path)


@pytest.fixture
def db_session(app: Flask) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test (SAVEPOINTs inside)."""
    with rolled_back_transaction(app) as session:
        yield session


@pytest.fixture
def client(app: Flask, db_session: Session) -> FlaskClient:
    """A test client whose requests run inside the test's transaction."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask, db_session: Session) -> FlaskCliRunner:
    """A CLI runner inside the test's transaction."""
    return app.test_cli_runner()


def pytest_report_header(config: pytest.Config) -> str:
    """Say which servers the run uses."""
    return (
        f"TEST_DATABASE_URL={os.environ.get('TEST_DATABASE_URL', '(default)')} "
        f"TEST_REDIS_URL={os.environ.get('TEST_REDIS_URL', '(default)')}"
    )


@pytest.fixture
def user(db_session: Session) -> Any:
    """A regular user."""
    from tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def other_user(db_session: Session) -> Any:
    """A second regular user (for cross-user access tests)."""
    from tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def admin(db_session: Session) -> Any:
    """An administrator."""
    from tests.factories import AdminFactory

    return AdminFactory()


@pytest.fixture(scope="session")
def live_database_url(postgres_server_url: str) -> Iterator[str]:
    """A database for live-stack tests: committed data, emptied between tests."""
    from tests.support.live import live_database

    with live_database(postgres_server_url) as url:
        yield url


@pytest.fixture
def make_live_stack(live_database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Any]:
    """Build live stacks (HTTP server + real workers on real Redis); all stopped afterwards."""
    from tests.support.live import LiveStack

    stacks: list[LiveStack] = []

    def build(fresh: bool = True, **overrides: str) -> LiveStack:
        stack = LiveStack(live_database_url, redis_url, tmp_path, overrides=dict(overrides))
        stack.start_app()
        if fresh:
            stack.reset()
        stacks.append(stack)
        return stack

    yield build
    for stack in stacks:
        stack.close()
    if stacks:
        stacks[0].reset()


@pytest.fixture
def throwaway_redis() -> Iterator[list[ManagedServer]]:
    """Redis servers the test starts (and may stop and restart on the same port); all stopped
    afterwards."""
    servers: list[ManagedServer] = []
    yield servers
    for server in servers:
        server.stop()
