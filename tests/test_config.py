"""The configuration profiles: what each reads, and what production refuses."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
import sqlalchemy

from app import config
from app.config import PROJECT_ROOT, ConfigError, Settings, load_settings
from app.core.database import build_engine
from tests.support.commands import run
from tests.support.settings import clear_settings_environment

STRONG_SECRET = "s" * 32
OTHER_STRONG_SECRET = "j" * 40
POSTGRES_URL = "postgresql://app@127.0.0.1:5432/app"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting leaks in from the shell, and no stray ``.env`` is read."""
    clear_settings_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)


# Valid broker and mail settings, which these tests do not test (tests/notifications does).
SERVICES = {
    "REDIS_URL": REDIS_URL,
    "SMTP_HOST": "smtp.example.com",
    "PUBLIC_BASE_URL": "https://app.example.com",
}


def production(**overrides: str) -> Settings:
    """Production settings from ``overrides`` (plus valid services, which are not tested here)."""
    return load_settings(APP_ENV="production", **{**SERVICES, **overrides})


def refusal(**overrides: str) -> str:
    """The message production refuses ``overrides`` with."""
    with pytest.raises(ConfigError) as caught:
        production(**overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- production ----------------------------------------------------------------------------


def test_production_accepts_safe_settings() -> None:
    settings = production(SECRET_KEY=STRONG_SECRET, DATABASE_URL=POSTGRES_URL)
    assert isinstance(settings, config.ProductionSettings)
    assert settings.database_url.drivername == "postgresql+psycopg2"
    assert settings.jwt_key == STRONG_SECRET


def test_production_uses_the_dedicated_jwt_key_when_set() -> None:
    settings = production(
        SECRET_KEY=STRONG_SECRET, JWT_SECRET_KEY=OTHER_STRONG_SECRET, DATABASE_URL=POSTGRES_URL
    )
    assert settings.jwt_key == OTHER_STRONG_SECRET


def test_production_refuses_a_missing_secret_key() -> None:
    assert refusal(DATABASE_URL=POSTGRES_URL).startswith("SECRET_KEY:")


def test_production_refuses_a_secret_key_shorter_than_32_bytes() -> None:
    message = refusal(SECRET_KEY="s" * 31, DATABASE_URL=POSTGRES_URL)
    assert message.startswith("SECRET_KEY:")
    assert "32 bytes" in message


def test_production_counts_secret_length_in_bytes_not_characters() -> None:
    # 16 two-byte characters are 32 bytes: accepted.
    settings = production(SECRET_KEY="é" * 16, DATABASE_URL=POSTGRES_URL)
    assert settings.SECRET_KEY is not None


def test_production_refuses_a_short_jwt_secret_key() -> None:
    message = refusal(SECRET_KEY=STRONG_SECRET, JWT_SECRET_KEY="short", DATABASE_URL=POSTGRES_URL)
    assert message.startswith("JWT_SECRET_KEY:")


def test_production_refuses_sqlite() -> None:
    message = refusal(SECRET_KEY=STRONG_SECRET, DATABASE_URL="sqlite:///app.db")
    assert message.startswith("DATABASE_URL:")
    assert "SQLite" in message


def test_production_refuses_a_missing_database_url() -> None:
    assert refusal(SECRET_KEY=STRONG_SECRET).startswith("DATABASE_URL:")


@pytest.mark.parametrize(
    "url",
    ["not a url", "postgresql://app@127.0.0.1:port/app", "http://example.com/db", "mysql://u@h/d"],
)
def test_production_refuses_a_malformed_database_url(url: str) -> None:
    assert refusal(SECRET_KEY=STRONG_SECRET, DATABASE_URL=url).startswith("DATABASE_URL:")


def test_production_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("DATABASE_URL", POSTGRES_URL)
    monkeypatch.setenv("DATABASE_POOL_SIZE", "17")
    for name, value in SERVICES.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert isinstance(settings, config.ProductionSettings)
    assert settings.DATABASE_POOL_SIZE == 17


def test_a_badly_typed_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_POOL_SIZE", "many")
    message = refusal(SECRET_KEY=STRONG_SECRET, DATABASE_URL=POSTGRES_URL)
    assert message.startswith("DATABASE_POOL_SIZE:")


def test_wsgi_exits_with_one_line_naming_the_setting() -> None:
    """End to end: the process a server would start prints one line and exits with 1."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "APP_ENV": "production",
        "SECRET_KEY": "short",
        "DATABASE_URL": "postgresql://x@127.0.0.1/db",
    }
    result = run([sys.executable, "-c", "import wsgi"], cwd=PROJECT_ROOT, env=environment)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error:")
    assert "SECRET_KEY" in lines[0]
    assert "Traceback" not in result.stderr


# --- development ---------------------------------------------------------------------------


def test_development_is_the_default_profile(tmp_path: Path) -> None:
    settings = load_settings(INSTANCE_PATH=str(tmp_path / "instance"))
    assert isinstance(settings, config.DevelopmentSettings)
    assert settings.APP_ENV == "development"


def test_development_uses_sqlite_under_the_instance_folder(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    settings = load_settings(APP_ENV="development", INSTANCE_PATH=str(instance))
    assert settings.is_sqlite
    assert settings.database_url.database == str(instance / "app.db")


def test_development_generates_and_keeps_a_secret(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    first = load_settings(APP_ENV="development", INSTANCE_PATH=str(instance))
    key_file = instance / "dev-secret-key"
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.SECRET_KEY is not None
    secret = first.SECRET_KEY.get_secret_value()
    assert len(secret.encode()) >= 32
    assert key_file.read_text() == secret

    second = load_settings(APP_ENV="development", INSTANCE_PATH=str(instance))
    assert second.SECRET_KEY is not None
    assert second.SECRET_KEY.get_secret_value() == secret


def test_development_reads_instance_path_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = tmp_path / "elsewhere"
    monkeypatch.setenv("INSTANCE_PATH", str(instance))
    settings = load_settings()
    assert settings.database_url.database == str(instance / "app.db")
    assert (instance / "dev-secret-key").exists()


def test_development_keeps_an_explicit_database_and_secret(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    settings = load_settings(
        APP_ENV="development",
        INSTANCE_PATH=str(instance),
        DATABASE_URL=POSTGRES_URL,
        SECRET_KEY="mine",
    )
    assert not settings.is_sqlite
    assert settings.SECRET_KEY is not None
    assert settings.SECRET_KEY.get_secret_value() == "mine"
    assert not (instance / "dev-secret-key").exists()


def test_dotenv_is_read_in_development(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SERVICE_NAME=from-dotenv\nDATABASE_POOL_SIZE=9\n")
    settings = load_settings(APP_ENV="development", INSTANCE_PATH=str(tmp_path / "instance"))
    assert settings.SERVICE_NAME == "from-dotenv"
    assert settings.DATABASE_POOL_SIZE == 9


def test_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("SERVICE_NAME=from-dotenv\n")
    monkeypatch.setenv("SERVICE_NAME", "from-environment")
    settings = load_settings(APP_ENV="development", INSTANCE_PATH=str(tmp_path / "instance"))
    assert settings.SERVICE_NAME == "from-environment"


@pytest.mark.parametrize("profile", ["testing", "production"])
def test_dotenv_is_ignored_outside_development(tmp_path: Path, profile: str) -> None:
    (tmp_path / ".env").write_text("SERVICE_NAME=from-dotenv\nSECRET_KEY=" + "d" * 40 + "\n")
    if profile == "production":
        # Were .env read, its SECRET_KEY would satisfy production; it must not.
        assert refusal(DATABASE_URL=POSTGRES_URL).startswith("SECRET_KEY:")
        return
    settings = load_settings(APP_ENV=profile)
    assert settings.SERVICE_NAME == "flask-service-template"


# --- testing and the profile switch ----------------------------------------------------------


def test_testing_profile_uses_cheap_password_hashing() -> None:
    settings = load_settings(APP_ENV="testing")
    assert isinstance(settings, config.TestingSettings)
    assert settings.PASSWORD_HASH_TIME_COST == 1
    assert settings.PASSWORD_HASH_MEMORY_KIB == 8


def test_app_env_from_the_environment_chooses_the_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_ENV", "testing")
    assert isinstance(load_settings(), config.TestingSettings)


@pytest.mark.parametrize("env", ["staging", "Production", "prod"])
def test_an_unknown_app_env_is_refused(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", env)
    with pytest.raises(ConfigError, match=r"^APP_ENV:"):
        load_settings()


# --- PostgreSQL URLs -----------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_postgres_urls_connect_through_psycopg2(scheme: str, postgres_server_url: str) -> None:
    url = sqlalchemy.make_url(postgres_server_url).set(drivername=scheme)
    settings = production(
        SECRET_KEY=STRONG_SECRET, DATABASE_URL=url.render_as_string(hide_password=False)
    )
    engine = build_engine(settings)
    try:
        assert engine.dialect.driver == "psycopg2"
        with engine.connect() as connection:
            assert connection.execute(sqlalchemy.text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_every_rate_limit_setting_is_listed_once() -> None:
    """The list the benchmark and the fuzzing stack raise holds every limit the app reads."""
    from app.config import RATE_LIMIT_SETTINGS, Settings

    limits = {
        name
        for name, field in Settings.model_fields.items()
        if name.startswith("RATELIMIT_")
        and field.annotation is str
        and name != "RATELIMIT_STORAGE_URL"
    }
    assert set(RATE_LIMIT_SETTINGS) == limits
    assert len(RATE_LIMIT_SETTINGS) == len(limits)
