"""Alembic environment: the database URL comes from the app's settings, never from an ini file.

Run through ``flask db upgrade`` (which passes its connection) or plain ``alembic upgrade head``.
On PostgreSQL a session-level advisory lock makes concurrent runs (several replicas, a k8s Job
retried) wait for each other instead of racing.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text
from sqlalchemy.types import TypeDecorator

from app.config import load_settings
from app.models import Base

MIGRATION_LOCK_ID = 7_245_001  # arbitrary, constant: the advisory lock key for migrations

target_metadata = Base.metadata


def render_item(kind: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render the app's TypeDecorators as their plain SQL type: migrations never import app code."""
    if kind == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


def run_with(connection: Connection) -> None:
    """Configure Alembic on ``connection`` and run the migrations under the advisory lock."""
    is_postgres = connection.dialect.name == "postgresql"
    if is_postgres:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_ID})
        connection.commit()
    try:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,  # SQLite can only ALTER tables by copying them
            compare_type=True,
            compare_server_default=True,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if is_postgres:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_ID})
            connection.commit()


def run_migrations_online() -> None:
    """Use the connection handed over by the CLI, or open one from the settings."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    engine = create_engine(load_settings().database_url, poolclass=pool.NullPool)
    with engine.connect() as new_connection:
        run_with(new_connection)


if context.is_offline_mode():
    context.configure(
        url=load_settings().database_url.render_as_string(hide_password=False),
        target_metadata=target_metadata,
        render_as_batch=True,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
