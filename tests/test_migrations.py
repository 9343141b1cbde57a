"""Alembic migrations: up from empty, down to nothing, and in agreement with the models."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask

from app.cli import alembic_config
from app.config import PROJECT_ROOT
from app.extensions import db
from app.models import Base
from tests.support.commands import run
from tests.support.database import migrate, migration_app, temporary_database

# Options migrations/env.py gives Alembic; the comparison must be as strict as autogenerate.
COMPARE_OPTIONS = {"compare_type": True, "compare_server_default": True}


@pytest.fixture
def empty_database(postgres_server_url: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    with temporary_database(postgres_server_url, prefix="tmpl_migrations") as url:
        yield url.render_as_string(hide_password=False)


def table_names(app: Flask) -> set[str]:
    """The tables in ``app``'s database (public schema)."""
    with app.app_context():
        return set(sqlalchemy.inspect(db.engine).get_table_names())


def current_revision(app: Flask) -> str | None:
    """The revision the database is at."""
    with app.app_context(), db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision in migrations/versions."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def test_there_is_a_single_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"merge the migration branches: {heads}"


def test_upgrade_downgrade_upgrade_on_postgresql(empty_database: str, tmp_path: Path) -> None:
    app = migration_app(empty_database, tmp_path)
    try:
        assert table_names(app) == set()

        migrate(app, "upgrade", "head")
        model_tables = set(Base.metadata.tables)
        assert table_names(app) == model_tables | {"alembic_version"}
        assert current_revision(app) == head_revision()

        migrate(app, "downgrade", "base")
        assert table_names(app) <= {"alembic_version"}
        assert current_revision(app) is None

        migrate(app, "upgrade", "head")
        assert table_names(app) == model_tables | {"alembic_version"}
    finally:
        with app.app_context():
            db.engine.dispose()


def test_models_and_migrations_agree(database_url: str, app: Flask) -> None:
    """Autogenerate against a head-migrated database finds nothing to do."""
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=COMPARE_OPTIONS)
        differences = compare_metadata(context, Base.metadata)
    assert differences == [], "run tests/support/regen_initial_migration.sh or add a migration"


def test_upgrade_head_on_sqlite(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    app = migration_app(f"sqlite:///{database}", tmp_path)
    migrate(app, "upgrade", "head")
    assert table_names(app) == set(Base.metadata.tables) | {"alembic_version"}
    assert current_revision(app) == head_revision()

    migrate(app, "downgrade", "base")
    assert table_names(app) <= {"alembic_version"}


def test_flask_db_upgrade_command(empty_database: str, tmp_path: Path) -> None:
    app = migration_app(empty_database, tmp_path)
    try:
        result = app.test_cli_runner().invoke(args=["db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert "database upgraded to head" in result.output
        assert table_names(app) == set(Base.metadata.tables) | {"alembic_version"}

        result = app.test_cli_runner().invoke(args=["db", "current"])
        assert result.exit_code == 0, result.output

        result = app.test_cli_runner().invoke(args=["db", "downgrade", "base"])
        assert result.exit_code == 0, result.output
        assert table_names(app) <= {"alembic_version"}
        assert current_revision(app) is None
    finally:
        with app.app_context():
            db.engine.dispose()


def test_flask_db_downgrade_accepts_a_relative_revision(tmp_path: Path) -> None:
    """``flask db downgrade -1`` is a revision, not an unknown option."""
    app = migration_app(f"sqlite:///{tmp_path / 'app.db'}", tmp_path)
    migrate(app, "upgrade", "head")
    before = current_revision(app)
    result = app.test_cli_runner().invoke(args=["db", "downgrade", "-1"])
    assert result.exit_code == 0, result.output
    script = ScriptDirectory.from_config(alembic_config())
    assert before is not None
    assert current_revision(app) == script.get_revision(before).down_revision


def test_plain_alembic_cli_reads_the_settings(empty_database: str, tmp_path: Path) -> None:
    """``alembic upgrade head`` with no Flask involved takes the URL from the environment."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "APP_ENV": "testing",
        "DATABASE_URL": empty_database,
        "INSTANCE_PATH": str(tmp_path),
    }
    result = run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=PROJECT_ROOT,
        env=environment,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    app = migration_app(empty_database, tmp_path)
    try:
        assert current_revision(app) == head_revision()
    finally:
        with app.app_context():
            db.engine.dispose()
