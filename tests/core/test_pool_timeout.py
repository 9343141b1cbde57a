"""An exhausted connection pool answers 503 with Retry-After after DATABASE_POOL_TIMEOUT_SECONDS,
rather than holding the request or failing with a traceback."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Engine

from tests.conftest import make_test_app


def test_a_request_that_finds_no_free_connection_is_a_prompt_503(
    database_url: str, instance_path: Path
) -> None:
    app = make_test_app(
        database_url,
        instance_path,
        DATABASE_POOL_SIZE=1,
        DATABASE_MAX_OVERFLOW=0,
        DATABASE_POOL_TIMEOUT_SECONDS=0.2,
    )
    engine: Engine = app.extensions["db_engine"]
    try:
        with engine.connect():  # the pool's only connection, held by someone else
            started = time.monotonic()
            answer = app.test_client().post(
                "/api/v1/auth/login",
                json={"email": "nobody@example.com", "password": "correct horse battery"},
            )
            waited = time.monotonic() - started
        assert answer.status_code == 503
        assert answer.headers["Retry-After"]
        assert answer.get_json()["code"] == "service_unavailable"
        assert 0.2 <= waited < 5, "it waited the pool timeout, not longer"
        again = app.test_client().post(
            "/api/v1/auth/login",
            json={"email": "nobody@example.com", "password": "correct horse battery"},
        )
        assert again.status_code == 401, "a connection freed is used again"
    finally:
        engine.dispose()
