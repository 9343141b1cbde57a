"""The database connection of one delivery attempt: single statements commit on their own.

A delivery attempt is a claim and an outcome, each one ``UPDATE ... RETURNING`` on the success
path. In an ordinary transaction each costs three round trips (psycopg2's ``BEGIN``, the
statement, ``COMMIT``), and four with ``SET LOCAL synchronous_commit``; in autocommit mode it is
one, and ``relaxed_commit()`` (``app.events.commits``) in its ``RETURNING`` makes that one
commit skip the disk flush. What needs several statements under row locks (a failed outcome,
the circuit breaker) runs in a real transaction on the same connection (``transaction``).

Tests bind the app to one connection inside a transaction (``Database.BIND_KEY``); they get the
usual session, whose commits release savepoints, and SQLite keeps ordinary transactions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app.extensions import db

_RAW_CONNECTION = "autocommit_dbapi_connection"


@contextmanager
def attempt_session() -> Iterator[Session]:
    """A session on one pooled connection (one checkout and ping) in autocommit mode."""
    testing = current_app.extensions.get(db.BIND_KEY) is not None
    if testing or db.engine.dialect.name != "postgresql":
        with db.one_connection() as session:
            yield session
        return
    with db.engine.connect() as connection:
        # psycopg2's own flag, set and cleared locally (SQLAlchemy's isolation_level option
        # would reset the connection's isolation level on every return to the pool).
        raw = connection.connection.dbapi_connection
        raw.autocommit = True  # type: ignore[union-attr]
        session = Session(bind=connection, expire_on_commit=False)
        session.info[_RAW_CONNECTION] = raw
        try:
            yield session
        finally:
            session.close()
            _end_autocommit(connection, raw)


def _end_autocommit(connection: Connection, raw: Any) -> None:
    """Give the pool its connection back as it lent it (or discard a broken one)."""
    if connection.invalidated:
        return
    try:
        raw.autocommit = False
    except Exception:  # the connection broke (a PostgreSQL restart): the pool drops it
        connection.invalidate()


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """``session`` itself, or, on an autocommit connection, a session in a real transaction on
    the same connection (several statements, row locks held until its commit)."""
    raw = session.info.get(_RAW_CONNECTION)
    bind = session.bind
    if raw is None or not isinstance(bind, Connection):
        yield session
        return
    session.commit()  # nothing to send: each statement has committed already
    raw.autocommit = False
    transactional = Session(bind=bind, expire_on_commit=False)
    try:
        yield transactional
    finally:
        transactional.close()
        if not bind.invalidated:
            raw.autocommit = True
