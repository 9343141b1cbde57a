"""The browser test's guards catch what they guard against, so their empty lists mean something."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Error, Page, expect

from tests.browser.swagger_ui import STEP_TIMEOUT_MS
from tests.support.browser import PageWatch

pytestmark = pytest.mark.slow

# A reserved name (RFC 6761): it never resolves, and the dead proxy refuses it first anyway.
OUTSIDE_URL = "http://swagger-test.invalid/probe"


def test_a_request_leaving_the_machine_is_recorded_and_fails(page: Page) -> None:
    watch = PageWatch.attach(page)
    page.goto("about:blank")

    with pytest.raises(Error, match="Failed to fetch"):
        page.evaluate("url => fetch(url).then(response => response.status)", OUTSIDE_URL)

    assert watch.remote_requests() == [OUTSIDE_URL]


def test_a_csp_violation_on_docs_is_recorded(make_live_stack: Any, page: Page) -> None:
    stack = make_live_stack()
    watch = PageWatch.attach(page)
    page.goto(f"{stack.base_url}/docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=STEP_TIMEOUT_MS)

    directive = page.evaluate(
        """() => new Promise((resolve) => {
            document.addEventListener(
                "securitypolicyviolation", (event) => resolve(event.effectiveDirective)
            );
            const script = document.createElement("script");
            script.textContent = "window.injectedScriptRan = true";
            document.body.append(script);
        })"""
    )
    watch.settle()

    assert directive == "script-src-elem"
    assert page.evaluate("() => window.injectedScriptRan") is None
    assert len(watch.csp_violations) == 1
    assert watch.csp_violations[0].startswith("script-src-elem blocked inline")
    assert any("Content Security Policy" in error for error in watch.console_errors)
