"""Settings of the production edge: what they accept, and what production refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, Settings, load_settings
from tests.support.settings import clear_settings_environment

PRODUCTION = {
    "APP_ENV": "production",
    "SECRET_KEY": "p" * 40,
    "DATABASE_URL": "postgresql://app@127.0.0.1:5432/app",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SMTP_HOST": "smtp.example.com",
    "PUBLIC_BASE_URL": "https://app.example.com",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting leaks in from the shell, and no stray ``.env`` is read."""
    clear_settings_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)


def production(**overrides: str) -> Settings:
    return load_settings(**{**PRODUCTION, **overrides})


def refusal(**overrides: str) -> str:
    with pytest.raises(ConfigError) as caught:
        production(**overrides)
    return str(caught.value)


def test_production_counts_in_the_same_redis_by_default() -> None:
    settings = production()

    assert settings.ratelimit_storage_url == PRODUCTION["REDIS_URL"]
    assert settings.PROXY_FIX_X_FOR == 0
    assert settings.FLASK_DEBUG is False


def test_production_refuses_per_process_counters() -> None:
    assert refusal(RATELIMIT_STORAGE_URL="memory://").startswith("RATELIMIT_STORAGE_URL:")
    # A Redis broker given only as CELERY_BROKER_URL leaves the limiter without Redis.
    message = refusal(REDIS_URL="", CELERY_BROKER_URL="redis://127.0.0.1:6379/1")
    assert message.startswith("RATELIMIT_STORAGE_URL:")
    assert (
        production(
            REDIS_URL="",
            CELERY_BROKER_URL="redis://b:6379/1",
            RATELIMIT_STORAGE_URL="redis://l:6379/2",
        ).ratelimit_storage_url
        == "redis://l:6379/2"
    )


def test_production_refuses_debug_mode() -> None:
    assert refusal(FLASK_DEBUG="true").startswith("FLASK_DEBUG:")


def test_production_refuses_any_origin() -> None:
    assert refusal(CORS_ALLOWED_ORIGINS="https://app.example.com,*").startswith(
        "CORS_ALLOWED_ORIGINS:"
    )
    assert production(CORS_ALLOWED_ORIGINS="https://app.example.com").cors_allowed_origins == {
        "https://app.example.com"
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATELIMIT_DEFAULT", "lots"),
        ("RATELIMIT_LOGIN_PER_ACCOUNT", "10/fortnight"),
        ("RATELIMIT_STORAGE_URL", "memcached://127.0.0.1:11211"),
        ("CORS_ALLOWED_ORIGINS", "app.example.com"),
        ("CORS_ALLOWED_ORIGINS", "https://app.example.com/path"),
        ("DOCS_ALLOWED_IPS", "10.0.0.0/33"),
        ("DOCS_ALLOWED_IPS", "intranet"),
        ("PROXY_FIX_X_FOR", "-1"),
    ],
)
def test_malformed_values_are_refused_in_every_profile(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(APP_ENV="testing", **{name: value})


def test_lists_are_comma_separated_and_normalised() -> None:
    settings = load_settings(
        APP_ENV="testing",
        CORS_ALLOWED_ORIGINS=" https://App.Example.com/ ,http://localhost:5173,",
        DOCS_ALLOWED_IPS="10.0.0.0/8, 192.168.1.7",
        RATELIMIT_LOGIN_PER_ACCOUNT=" 5/minute;20/hour ",
    )

    assert settings.cors_allowed_origins == {"https://app.example.com", "http://localhost:5173"}
    assert [str(network) for network in settings.docs_allowed_networks] == [
        "10.0.0.0/8",
        "192.168.1.7/32",
    ]
    assert settings.RATELIMIT_LOGIN_PER_ACCOUNT == "5/minute;20/hour"


def test_an_empty_limit_turns_that_limit_off() -> None:
    assert load_settings(APP_ENV="testing", RATELIMIT_LOGIN_PER_IP="").RATELIMIT_LOGIN_PER_IP == ""
