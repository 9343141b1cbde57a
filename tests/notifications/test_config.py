"""Mail settings: what production refuses, and how the public URL is read."""

from __future__ import annotations

import pytest

from app.config import ConfigError, load_settings
from tests.support.settings import clear_settings_environment, production


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings_environment(monkeypatch)


def test_production_sends_over_smtp_by_default() -> None:
    assert production().MAIL_BACKEND == "smtp"


def test_production_refuses_the_console_backend() -> None:
    with pytest.raises(ConfigError, match=r"^MAIL_BACKEND: console is for development only"):
        production(MAIL_BACKEND="console")


def test_production_refuses_smtp_without_a_host() -> None:
    with pytest.raises(ConfigError, match=r"^SMTP_HOST: must be set in production"):
        production(SMTP_HOST="")


@pytest.mark.parametrize(
    "url", ["http://app.example.com", "https://localhost:8000", "https://127.0.0.1"]
)
def test_production_refuses_links_that_are_not_public_https(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^PUBLIC_BASE_URL: must be the public https://"):
        production(PUBLIC_BASE_URL=url)


def test_public_base_url_must_be_a_url_and_loses_its_trailing_slash() -> None:
    assert production(PUBLIC_BASE_URL="https://app.example.com/").PUBLIC_BASE_URL == (
        "https://app.example.com"
    )
    with pytest.raises(ConfigError, match=r"^PUBLIC_BASE_URL: is not a valid URL"):
        load_settings(APP_ENV="testing", PUBLIC_BASE_URL="app.example.com")


def test_development_prints_emails() -> None:
    assert load_settings(APP_ENV="testing").MAIL_BACKEND == "console"
