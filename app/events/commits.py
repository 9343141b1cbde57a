"""A commit that need not wait for the disk, asked for inside the statement that needs it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, literal
from sqlalchemy.sql.elements import ColumnElement


def relaxed_commit(dialect: str) -> ColumnElement[Any]:
    """A column for a statement's ``RETURNING``: the commit of its transaction does not wait for
    the disk flush (``synchronous_commit = off`` for that transaction; PostgreSQL only).

    The promise of ``app.core.database.relax_commit_durability`` without a ``SET LOCAL`` round
    trip of its own: only for bookkeeping whose loss in a database crash means doing the work
    once more (a lease, a "consumed" marker with its effect, a "dispatched" mark).
    """
    if dialect == "postgresql":
        return func.set_config("synchronous_commit", "off", True).label("relaxed_commit")
    return literal(None).label("relaxed_commit")
