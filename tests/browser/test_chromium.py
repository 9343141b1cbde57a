"""ensure_chromium: the system browser, else Debian's package, else one line saying what to do."""

from __future__ import annotations

import pytest

from tests.support import browser
from tests.support.services import ServiceUnavailableError


def test_the_installed_chromium_is_used_without_installing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installs: list[tuple[str, ...]] = []
    monkeypatch.setattr(browser, "_find_chromium", lambda: "/usr/bin/chromium")
    monkeypatch.setattr(browser, "_apt_install", lambda *packages: installs.append(packages))

    assert browser.ensure_chromium() == "/usr/bin/chromium"
    assert installs == []


def test_a_missing_chromium_is_installed_from_debian(monkeypatch: pytest.MonkeyPatch) -> None:
    installed: list[tuple[str, ...]] = []
    monkeypatch.setattr(
        browser, "_find_chromium", lambda: "/usr/bin/chromium" if installed else None
    )
    monkeypatch.setattr(
        browser, "_apt_install", lambda *packages: installed.append(packages) or True
    )

    assert browser.ensure_chromium() == "/usr/bin/chromium"
    assert installed == [("chromium",)]


def test_no_chromium_and_no_apt_stops_with_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(browser, "_find_chromium", lambda: None)
    monkeypatch.setattr(browser, "_apt_install", lambda *packages: False)

    with pytest.raises(ServiceUnavailableError) as raised:
        browser.ensure_chromium()

    message = str(raised.value)
    assert "\n" not in message
    assert "apt-get install chromium" in message


def test_launch_options_name_the_system_browser_and_the_dead_proxy() -> None:
    options = browser.launch_args("/usr/bin/chromium")

    assert options["executable_path"] == "/usr/bin/chromium"
    assert "--proxy-server=http://127.0.0.1:9" in options["args"]
