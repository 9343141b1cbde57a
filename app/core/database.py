"""SQLAlchemy 2 base, column types that behave the same on PostgreSQL and SQLite, and sessions."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Uuid,
    create_engine,
    event,
    func,
    literal,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from app.config import Settings

logger = logging.getLogger(__name__)

# Stable constraint names, so Alembic can drop and alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; pass a timezone-aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
# Ids: 64-bit on PostgreSQL; on SQLite only an INTEGER PRIMARY KEY autoincrements.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of every model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[str]: JSONType,
        uuid.UUID: Uuid(),
    }


def build_engine(settings: Settings) -> Engine:
    """Create the engine with the pool settings of ``settings``."""
    url = settings.database_url
    if settings.is_sqlite:
        in_memory = url.database in (None, "", ":memory:")
        if not in_memory and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=settings.DATABASE_ECHO,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if in_memory else None,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        echo=settings.DATABASE_ECHO,
        pool_pre_ping=True,  # a connection closed by a PostgreSQL restart is replaced, not used
        pool_size=settings.DATABASE_POOL_SIZE,
        max_overflow=settings.DATABASE_MAX_OVERFLOW,
        pool_timeout=settings.DATABASE_POOL_TIMEOUT_SECONDS,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": settings.DATABASE_CONNECT_TIMEOUT_SECONDS,
            "application_name": settings.SERVICE_NAME[:63],
        },
    )


def relax_commit_durability(session: Session) -> None:
    """Let this transaction's COMMIT return before its WAL is flushed to disk (PostgreSQL's
    ``synchronous_commit = off``, for this transaction only; nothing on SQLite).

    Only for bookkeeping whose loss in a database crash is repaired by doing the work once more,
    which at-least-once delivery already allows: a lease, a "published" or "dispatched" mark.
    Never for data a client was told is stored. A crash loses at most the last few hundred
    milliseconds of such commits; the database stays consistent.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))


def relaxed_commit(dialect: str) -> ColumnElement[Any]:
    """A column for a statement's ``RETURNING``: the commit of its transaction does not wait for
    the disk flush (``synchronous_commit = off`` for that transaction; PostgreSQL only).

    The promise of ``relax_commit_durability`` without a ``SET LOCAL`` round trip of its own:
    only for bookkeeping whose loss in a database crash means doing the work once more (a lease,
    a "consumed" marker with its effect, a "dispatched" mark).
    """
    if dialect == "postgresql":
        return func.set_config("synchronous_commit", "off", True).label("relaxed_commit")
    return literal(None).label("relaxed_commit")


def lock_until_commit(session: Session, key: str) -> None:
    """Make transactions that take the same ``key`` run one after the other from here until
    they end (PostgreSQL's transaction-scoped advisory lock; SQLite lets one writer at a time).

    For a rule that reads and then writes rows that do not exist yet, so no row lock can guard
    it: "at most N per user" checked by a count.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # SQLite ignores foreign keys unless asked
    cursor.execute("PRAGMA journal_mode=WAL")  # the worker and the API write concurrently
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    """The engine of the current app and a session per request (or per background task).

    The engine lives in ``app.extensions``, so several apps (tests, CLI) can coexist; the session
    is created on first use and removed at the end of the app context.
    """

    ENGINE_KEY = "db_engine"
    BIND_KEY = "db_bind"  # tests put a Connection here to run each test in a SAVEPOINT

    def __init__(self) -> None:
        self.session: scoped_session[Session] = scoped_session(
            self._new_session  # type: ignore[arg-type]  # any Session factory works
        )

    def init_app(self, app: Flask, settings: Settings) -> None:
        """Create the engine and remove the session at the end of every app context."""
        app.extensions[self.ENGINE_KEY] = build_engine(settings)
        app.extensions["database"] = self
        app.teardown_appcontext(self._remove_session)

    @property
    def engine(self) -> Engine:
        """The engine of the current app."""
        engine: Engine = current_app.extensions[self.ENGINE_KEY]
        return engine

    def _new_session(self) -> Session:
        bind = current_app.extensions.get(self.BIND_KEY) or self.engine
        # With a Connection already in a transaction (tests), commit releases a SAVEPOINT.
        return Session(bind=bind, expire_on_commit=False, join_transaction_mode="create_savepoint")

    def dispose_after_fork(self) -> None:
        """Drop pooled connections inherited from a parent process (gunicorn, Celery prefork)."""
        self.session.remove()
        self.engine.dispose(close=False)

    @contextmanager
    def scoped(self) -> Iterator[Session]:
        """A session for work outside a request (CLI, background tasks), removed afterwards."""
        try:
            yield self.session()
        finally:
            self._remove_session(None)

    @contextmanager
    def one_connection(self) -> Iterator[Session]:
        """A session keeping one pooled connection across its transactions, so work of several
        short transactions (a claim, then an outcome) checks out and pings the connection once.

        Between transactions the connection is idle, not in a transaction. Tests that bind the
        app to their own connection get the usual session.
        """
        if current_app.extensions.get(self.BIND_KEY) is not None:
            yield self.session()
            return
        with self.engine.connect() as connection:
            session = Session(bind=connection, expire_on_commit=False)
            try:
                yield session
            finally:
                session.close()

    def _remove_session(self, _exc: BaseException | None) -> None:
        try:
            self.session.remove()
        except DBAPIError:
            # PostgreSQL went away after the last query (a restart, a failover): the closing
            # ROLLBACK cannot reach it. Whatever the request did is committed or lost already,
            # and its answer is made; an error here would only turn that answer into the
            # server's own HTML 500. Drop the connection and the session so the thread starts
            # clean (the next checkout is pinged).
            logger.warning("database connection lost while closing the session")
            if self.session.registry.has():
                self.session.registry().invalidate()
            self.session.registry.clear()
