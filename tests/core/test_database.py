"""Database helpers: relaxed commit durability for at-least-once bookkeeping."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.core.database import relax_commit_durability
from app.extensions import db


def _synchronous_commit(session: Session) -> str:
    return str(session.execute(text("SHOW synchronous_commit")).scalar_one())


def test_relaxed_durability_holds_for_one_transaction_only(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        try:
            assert _synchronous_commit(session) == "on"
            relax_commit_durability(session)
            assert _synchronous_commit(session) == "off"
            session.commit()
            assert _synchronous_commit(session) == "on"  # the next transaction is durable again
        finally:
            session.rollback()
            db.session.remove()
