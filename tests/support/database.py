"""Throwaway PostgreSQL databases for one test run, migrated with the real migrations."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy
from alembic import command
from flask import Flask
from sqlalchemy import Connection
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from app import create_app
from app.cli import alembic_config
from app.config import normalize_database_url
from app.extensions import db


def _admin_engine(server_url: str) -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(
        normalize_database_url(server_url),
        isolation_level="AUTOCOMMIT",
        poolclass=sqlalchemy.NullPool,
    )


@contextmanager
def temporary_database(server_url: str, prefix: str = "tmpl_test") -> Iterator[URL]:
    """Create an empty database on ``server_url``'s server; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(server_url)
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield normalize_database_url(server_url).set(database=name)
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def migration_app(database_url: str, tmp_path: Path) -> Flask:
    """An app on ``database_url``, for running the migration commands."""
    return create_app(
        {"APP_ENV": "testing", "DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path)}
    )


def migrate(app: Flask, direction: str, revision: str) -> None:
    """Run ``alembic upgrade|downgrade revision`` on ``app``'s database."""
    with app.app_context(), db.engine.connect() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


@contextmanager
def migrated_database(server_url: str, prefix: str = "tmpl_test") -> Iterator[str]:
    """A new database on ``server_url``'s server, migrated to head by Alembic as production is;
    its URL; dropped afterwards."""
    with temporary_database(server_url, prefix=prefix) as url:
        rendered = url.render_as_string(hide_password=False)
        migrate_app = create_app({"APP_ENV": "testing", "DATABASE_URL": rendered})
        migrate(migrate_app, "upgrade", "head")
        with migrate_app.app_context():
            db.engine.dispose()
        yield rendered


@contextmanager
def rolled_back_transaction(app: Flask) -> Iterator[Session]:
    """``app``'s session inside a transaction that is rolled back on exit, its context pushed.

    Services commit as usual; on a connection already in a transaction their commit only
    releases a SAVEPOINT, so nothing written inside outlives it.
    """
    with app.app_context():
        connection = db.engine.connect()
    transaction = connection.begin()
    app.extensions[db.BIND_KEY] = connection
    context = app.app_context()
    context.push()
    try:
        yield db.session()
    finally:
        db.session.remove()
        context.pop()
        app.extensions.pop(db.BIND_KEY, None)
        transaction.rollback()
        connection.close()


def insert_user(connection: Connection | Session, email: str) -> int:
    """A throwaway active user written with raw SQL (no app, no factory), on PostgreSQL or
    SQLite; its id."""
    return connection.execute(
        sqlalchemy.text(
            "INSERT INTO users (email, password_hash, role, is_active, created_at, updated_at, "
            "password_changed_at) VALUES (:email, 'x', 'user', :active, CURRENT_TIMESTAMP, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP) RETURNING id"
        ),
        {"email": email, "active": True},
    ).scalar_one()
