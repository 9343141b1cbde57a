"""PostgreSQL going away between a request's last query and its end (a restart, a failover).

Found by the soak (docs/reliability.md): the session's closing ROLLBACK failed in the app
context's teardown, outside every error handler, so gunicorn answered with its own HTML 500
although the request had done its work; and the thread kept the broken session.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy
from flask import Flask
from sqlalchemy import text

from app.config import normalize_database_url
from app.extensions import db
from tests.conftest import make_test_app


def app_whose_connection_dies_after_the_view(database_url: str, instance_path: Path) -> Flask:
    """An app on the test database with a view whose own connection is killed as it returns."""
    app = make_test_app(database_url, instance_path)
    admin = sqlalchemy.create_engine(
        normalize_database_url(database_url), poolclass=sqlalchemy.NullPool
    )

    def killed_after_reading() -> dict[str, int]:
        pid = int(db.session().execute(text("SELECT pg_backend_pid()")).scalar_one())
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return {"backend": pid}

    def reads() -> dict[str, int]:
        return {"one": int(db.session().execute(text("SELECT 1")).scalar_one())}

    app.add_url_rule("/killed-after-reading", view_func=killed_after_reading)
    app.add_url_rule("/reads", view_func=reads)
    return app


def test_a_connection_lost_after_the_view_keeps_its_answer(
    database_url: str, instance_path: Path
) -> None:
    app = app_whose_connection_dies_after_the_view(database_url, instance_path)
    client = app.test_client()
    response = client.get("/killed-after-reading")
    assert response.status_code == 200
    assert "backend" in response.get_json()
    # The same thread starts clean: a new session, a pinged connection.
    assert client.get("/reads").get_json() == {"one": 1}
    with app.app_context():
        db.engine.dispose()
