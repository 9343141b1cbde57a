"""Playwright fixtures for the browser tests, launching Debian's Chromium (never a download)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.browser import ensure_chromium, launch_args
from tests.support.services import ServiceUnavailableError


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch options plus the system Chromium and its safety flags."""
    try:
        chromium = ensure_chromium()
    except ServiceUnavailableError as exc:
        pytest.exit(str(exc), returncode=3)
    options = launch_args(chromium)
    options["args"] = [*browser_type_launch_args.get("args", []), *options["args"]]
    return {**browser_type_launch_args, **options}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    """A desktop-sized window, so the screenshot shows the page as people see it."""
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}}
