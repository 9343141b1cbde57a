"""Two webhook creates of one user at once cannot both pass the per-user cap."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from app import create_app
from app.core.errors import Conflict
from app.extensions import db
from app.webhooks import service
from app.webhooks.models import Webhook
from tests.support.database import insert_user

CAP = 2


@pytest.fixture
def committing_app(live_database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """An app on the live-test database, whose sessions really commit (no SAVEPOINT)."""
    app = create_app(
        {
            "APP_ENV": "testing",
            "DATABASE_URL": live_database_url,
            "INSTANCE_PATH": str(tmp_path),
            "WEBHOOK_MAX_PER_USER": CAP,
            "WEBHOOK_ALLOW_PRIVATE_TARGETS": True,
        }
    )
    with app.app_context():
        session = db.session()
        session.execute(text("DELETE FROM users WHERE email = 'cap@example.com'"))
        session.commit()
        db.session.remove()
    yield app
    with app.app_context():
        session = db.session()
        session.execute(text("DELETE FROM users WHERE email = 'cap@example.com'"))
        session.commit()
        db.session.remove()
        db.engine.dispose()


def test_two_creates_at_the_cap_minus_one_make_one_webhook(
    committing_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    with committing_app.app_context():
        session = db.session()
        owner = insert_user(session, "cap@example.com")
        session.commit()
        values = {"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}
        service.create_webhook(session, owner_id=owner, values=values)
        db.session.remove()

    # Each create waits here, after its count, for the other to have counted too (at most 2 s:
    # with the lock the second cannot count until the first has committed).
    both_counted = threading.Barrier(2, timeout=2)
    original = service.generate_secret

    def after_the_count() -> str:
        with contextlib.suppress(threading.BrokenBarrierError):
            both_counted.wait()
        return original()

    monkeypatch.setattr(service, "generate_secret", after_the_count)
    outcomes: list[Any] = []

    def create() -> None:
        with committing_app.app_context():
            try:
                service.create_webhook(db.session(), owner_id=owner, values=values)
                outcomes.append("created")
            except Conflict:
                outcomes.append("conflict")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["conflict", "created"]
    with committing_app.app_context():
        count = db.session().scalar(
            select(func.count()).select_from(Webhook).where(Webhook.owner_id == owner)
        )
        db.session.remove()
    assert count == CAP
