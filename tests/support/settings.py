"""Production settings for tests of what production accepts and refuses."""

from __future__ import annotations

from typing import Any

import pytest

from app.config import Settings, load_settings

# Valid values of every setting production requires, so that a test changes only the one it tests.
PRODUCTION_REQUIRED = {
    "SECRET_KEY": "s" * 32,
    "DATABASE_URL": "postgresql://app@127.0.0.1:5432/app",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SMTP_HOST": "smtp.example.com",
    "PUBLIC_BASE_URL": "https://app.example.com",
}


def clear_settings_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the shell."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)


def production(**overrides: Any) -> Settings:
    """Production settings: the required values, then ``overrides``."""
    return load_settings(APP_ENV="production", **{**PRODUCTION_REQUIRED, **overrides})
