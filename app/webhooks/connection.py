"""The database connection of one delivery attempt: single statements commit on their own.

A delivery attempt is a claim and an outcome, each one ``UPDATE ... RETURNING`` on the success
path. In an ordinary transaction each costs three round trips (psycopg2's ``BEGIN``, the
statement, ``COMMIT``), and four with ``SET LOCAL synchronous_commit``; in autocommit mode it is
one, and ``relaxed_commit()`` (``app.core.database``) in its ``RETURNING`` makes that one
commit skip the disk flush. What needs several statements under row locks (a failed outcome,
the circuit breaker) runs in a real transaction on the same connection (``transaction``).

Tests bind the app to one connection inside a transaction (``Database.BIND_KEY``); they get the
usual session, whose commits release savepoints, and SQLite keeps ordinary transactions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.extensions import db

_RAW_CONNECTION = "autocommit_dbapi_connection"
CLAIMED = "claimed"  # set in session.info once the attempt's first statement went through
# One connection per worker process and engine, kept checked out between attempts.
_held: dict[tuple[int, int], tuple[Connection, Any]] = {}


class StaleConnection(Exception):
    """The kept connection died before the attempt's first statement (a PostgreSQL restart);
    nothing was done, and the attempt can start again on a new connection."""


@contextmanager
def attempt_session() -> Iterator[Session]:
    """A session in autocommit mode on the connection this process keeps for attempts.

    Checked out (and pinged) once, not per attempt: attempts come back to back, and the ping
    was a round trip of three per attempt. A connection found dead by the first statement
    (``StaleConnection``) is replaced and the attempt started again, as the ping would have.
    """
    testing = current_app.extensions.get(db.BIND_KEY) is not None
    if testing or db.engine.dialect.name != "postgresql":
        with db.one_connection() as session:
            yield session
        return
    key = (os.getpid(), id(db.engine))
    held = _held.get(key)
    reused = held is not None and not held[0].invalidated and not held[0].closed
    if not reused:
        connection = db.engine.connect()
        # psycopg2's own flag (SQLAlchemy's isolation_level option would reset the
        # connection's isolation level on every return to the pool).
        raw = connection.connection.dbapi_connection
        raw.autocommit = True  # type: ignore[union-attr]
        held = _held[key] = (connection, raw)
    assert held is not None
    connection, raw = held
    session = Session(bind=connection, expire_on_commit=False)
    session.info[_RAW_CONNECTION] = raw
    try:
        yield session
    except DBAPIError as error:
        if error.connection_invalidated or connection.invalidated:
            _held.pop(key, None)
            connection.close()
            if reused and not session.info.get(CLAIMED):
                raise StaleConnection from error
        raise
    finally:
        session.close()


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
