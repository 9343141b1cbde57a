"""`make run` serves the API, a worker and beat on the embedded defaults (deploy/Procfile.dev)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.config import PROJECT_ROOT, load_settings
from tests.support.settings import clear_settings_environment

PROCFILE = (PROJECT_ROOT / "deploy" / "Procfile.dev").read_text()


def procfile_commands() -> dict[str, str]:
    """Process name -> command of every line of deploy/Procfile.dev."""
    return dict(re.findall(r"^([a-z]+): (.+)$", PROCFILE, flags=re.MULTILINE))


def test_make_run_starts_the_api_a_worker_and_beat_through_the_procfile() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert "--procfile deploy/Procfile.dev" in makefile
    commands = procfile_commands()
    assert set(commands) == {"web", "worker", "beat"}
    assert "--port $PORT" in commands["web"]
    assert "celery -A celery_worker worker" in commands["worker"]  # its queues: tests/deploy
    assert "celery -A celery_worker beat" in commands["beat"]


def test_the_embedded_defaults_need_no_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_settings_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    instance = tmp_path / "instance"
    settings = load_settings(INSTANCE_PATH=str(instance))
    assert settings.is_sqlite
    assert not settings.broker_is_redis
    assert settings.broker_url == f"sqla+sqlite:///{instance / 'celery-broker.sqlite'}"
    assert settings.MAIL_BACKEND == "console"
