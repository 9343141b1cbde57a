"""The app never creates or migrates tables itself: `flask db upgrade` is the only way a schema
changes, so starting a new version cannot race the release's migration step."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy

from tests.conftest import make_test_app
from tests.support.database import temporary_database


def test_starting_and_serving_on_an_empty_database_creates_no_table(
    postgres_server_url: str, tmp_path: Path
) -> None:
    with temporary_database(postgres_server_url, prefix="tmpl_no_schema") as url:
        rendered = url.render_as_string(hide_password=False)
        app = make_test_app(rendered, tmp_path)
        client = app.test_client()
        assert client.get("/health/ready").status_code == 200
        assert client.get("/api/v1/openapi.json").status_code == 200
        assert client.get("/api/v1/tasks").status_code == 401
        app.extensions["db_engine"].dispose()
        engine = sqlalchemy.create_engine(rendered, poolclass=sqlalchemy.NullPool)
        try:
            with engine.connect() as connection:
                assert sqlalchemy.inspect(connection).get_table_names() == []
        finally:
            engine.dispose()
