"""Concurrent `flask db upgrade` runs on PostgreSQL wait on one advisory lock (migrations/env.py),
so replicas or a release job started twice cannot migrate at the same time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import sqlalchemy
from sqlalchemy import Connection, text

from app.config import PROJECT_ROOT
from tests.support.database import temporary_database
from tests.support.live import wait_for


def migration_lock_id() -> int:
    """The advisory lock key migrations/env.py takes (that file cannot be imported outside
    Alembic)."""
    source = (PROJECT_ROOT / "migrations" / "env.py").read_text()
    match = re.search(r"^MIGRATION_LOCK_ID = ([0-9_]+)", source, flags=re.MULTILINE)
    assert match, "migrations/env.py defines MIGRATION_LOCK_ID"
    return int(match.group(1))


def sessions_waiting_for_an_advisory_lock(connection: Connection) -> int:
    """Sessions of this database blocked on an advisory lock."""
    return int(
        connection.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        ).scalar_one()
    )


def test_an_upgrade_waits_while_another_run_holds_the_migration_lock(
    postgres_server_url: str, tmp_path: Path
) -> None:
    lock = {"key": migration_lock_id()}
    with temporary_database(postgres_server_url, prefix="tmpl_migration_lock") as url:
        rendered = url.render_as_string(hide_password=False)
        engine = sqlalchemy.create_engine(rendered, poolclass=sqlalchemy.NullPool)
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "APP_ENV": "testing",
            "DATABASE_URL": rendered,
            "INSTANCE_PATH": str(tmp_path),
        }
        try:
            with engine.connect() as other_run:
                other_run.execute(text("SELECT pg_advisory_lock(:key)"), lock)
                other_run.commit()
                upgrade = subprocess.Popen(
                    [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
                    cwd=PROJECT_ROOT,
                    env=environment,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                try:
                    wait_for(
                        lambda: (
                            sessions_waiting_for_an_advisory_lock(other_run)
                            or upgrade.poll() is not None
                        ),
                        timeout=60,
                        what="the upgrade to wait on the migration lock",
                    )
                    assert upgrade.poll() is None, upgrade.communicate()[0]
                    tables = sqlalchemy.inspect(other_run).get_table_names()
                    assert "alembic_version" not in tables, "it migrated without the lock"
                    other_run.execute(text("SELECT pg_advisory_unlock(:key)"), lock)
                    other_run.commit()
                    output, _ = upgrade.communicate(timeout=120)
                finally:
                    if upgrade.poll() is None:
                        upgrade.kill()
                        upgrade.wait()
            assert upgrade.returncode == 0, output
            with engine.connect() as connection:
                assert "alembic_version" in sqlalchemy.inspect(connection).get_table_names()
        finally:
            engine.dispose()
