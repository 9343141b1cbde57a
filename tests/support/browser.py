"""Headless Chromium for the browser tests: Debian's package, driven by Playwright.

Playwright's own browser downloads are never used (``playwright install`` fetches a build from
outside the package registries): the tests launch the system ``chromium`` by path, installing
Debian's package when running as root with apt, otherwise stopping with one clear line.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import ConsoleMessage, Page, Request

from tests.support.services import ServiceUnavailableError, _apt_install

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")

# A proxy nobody listens on: Chromium sends loopback direct, and any request that would leave
# the machine fails at once instead of reaching the network.
CHROMIUM_ARGS = (
    "--proxy-server=http://127.0.0.1:9",
    # Containers often give /dev/shm only 64 MB; Chromium crashes tabs when it runs out.
    "--disable-dev-shm-usage",
)

LOCAL_HOSTS = frozenset({"127.0.0.1"})
NETWORK_SCHEMES = frozenset({"http", "https", "ws", "wss"})


def _find_chromium() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return next((path for path in CHROMIUM_PATHS if Path(path).exists()), None)


def ensure_chromium() -> str:
    """Path of Debian's ``chromium``: the installed one, else the package installed by apt."""
    binary = _find_chromium()
    if binary is None and _apt_install("chromium"):
        binary = _find_chromium()
    if binary is None:
        raise ServiceUnavailableError(
            "Chromium is not installed: install Debian's package (`apt-get install chromium`) "
            "for the browser tests; `playwright install` is not used"
        )
    return binary


def launch_args(executable_path: str) -> dict[str, Any]:
    """Playwright ``launch()`` keyword arguments for the system Chromium."""
    return {"executable_path": executable_path, "args": list(CHROMIUM_ARGS)}


# Reports CSP violations to the test: Playwright's init scripts are not subject to the page's
# policy. Each report is a promise that settles once the test has recorded it (see settle()).
_REPORT_CSP_VIOLATIONS = """
window.__cspReports = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspReports.push(window.reportCspViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"} ` +
    `(${event.sourceFile}:${event.lineNumber})`
  ));
});
"""


@dataclass
class PageWatch:
    """Everything a page did that a test may want to refuse: requests, errors, CSP violations."""

    page: Page
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)

    @classmethod
    def attach(cls, page: Page) -> PageWatch:
        """Start recording ``page`` (and every request of its browser context)."""
        watch = cls(page)
        page.context.on("request", watch._on_request)
        page.on("console", watch._on_console)
        page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
        page.expose_function("reportCspViolation", watch._on_csp_violation)
        page.add_init_script(_REPORT_CSP_VIOLATIONS)
        return watch

    def settle(self) -> None:
        """Wait until every CSP violation the page has seen so far is recorded here."""
        self.page.evaluate("() => Promise.all(window.__cspReports || [])")

    def _on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _on_csp_violation(self, description: str) -> None:
        self.csp_violations.append(description)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    def remote_requests(self) -> list[str]:
        """Requests (http, https, ws, wss) to any host other than the loopback address."""
        remote = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in NETWORK_SCHEMES and parts.hostname not in LOCAL_HOSTS:
                remote.append(url)
            elif parts.scheme not in NETWORK_SCHEMES | {"data", "blob", "about"}:
                remote.append(url)  # an unexpected scheme is reported, not ignored
        return remote
