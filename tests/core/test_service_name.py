"""SERVICE_NAME names the service where operators see it: the OpenAPI title and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

from tests.conftest import make_test_app

NAME = "probe-service-name"  # not a name tests/template renames to


def test_service_name_is_the_openapi_title_and_the_postgresql_application_name(
    database_url: str, instance_path: Path
) -> None:
    app = make_test_app(database_url, instance_path, SERVICE_NAME=NAME)
    document = app.test_client().get("/api/v1/openapi.json")
    assert document.status_code == 200
    assert document.get_json()["info"]["title"] == NAME
    engine: Engine = app.extensions["db_engine"]
    try:
        with engine.connect() as connection:
            # pg_stat_activity is what an operator reads to tell whose connections these are.
            shown = connection.execute(
                text("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            ).scalar_one()
    finally:
        engine.dispose()
    assert shown == NAME
