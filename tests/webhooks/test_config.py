"""Webhook settings: what production refuses, and the defaults each profile starts with."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, load_settings
from app.webhooks.ssrf import UrlPolicy
from tests.support.settings import clear_settings_environment, production


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings_environment(monkeypatch)


def test_production_requires_https_and_refuses_private_targets_by_default() -> None:
    policy = UrlPolicy.from_settings(production())
    assert policy.require_https is True
    assert policy.allow_private is False
    assert policy.allowed_ports == frozenset({80, 443, 8080, 8443})


def test_production_refuses_private_targets() -> None:
    with pytest.raises(ConfigError, match=r"^WEBHOOK_ALLOW_PRIVATE_TARGETS: is for tests only"):
        production(WEBHOOK_ALLOW_PRIVATE_TARGETS="true")


def test_production_refuses_plain_http_targets() -> None:
    with pytest.raises(ConfigError, match=r"^WEBHOOK_REQUIRE_HTTPS: must be true in production"):
        production(WEBHOOK_REQUIRE_HTTPS="false")


def test_other_profiles_allow_http_but_not_private_targets(tmp_path: Path) -> None:
    for env in ("development", "testing"):
        policy = UrlPolicy.from_settings(load_settings(APP_ENV=env, INSTANCE_PATH=str(tmp_path)))
        assert (policy.require_https, policy.allow_private) == (False, False)


def test_allowed_ports_are_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_ALLOWED_PORTS", "[443, 9443]")
    assert load_settings(APP_ENV="testing").WEBHOOK_ALLOWED_PORTS == (443, 9443)
