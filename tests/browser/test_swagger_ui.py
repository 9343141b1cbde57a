"""Swagger UI at /docs in headless Chromium, used as a person would, with its CSP on.

The app is served over real HTTP with real PostgreSQL; the browser is Debian's Chromium behind a
dead proxy, so anything that tried to leave the machine would fail and be recorded.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.browser.swagger_ui import STEP_TIMEOUT_MS, Operation, authorize
from tests.support.browser import PageWatch
from tests.support.live import PROJECT_ROOT

pytestmark = pytest.mark.slow

# Gitignored; `make screenshot` copies it to docs/images/swagger-ui.png for the README.
SCREENSHOT = PROJECT_ROOT / "test-artifacts" / "swagger-ui.png"
HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


def operation_count(document: dict[str, Any]) -> int:
    """How many operations the OpenAPI document declares."""
    return sum(
        1 for item in document["paths"].values() for method in item if method in HTTP_METHODS
    )


def is_browser_favicon_miss(console_error: str) -> bool:
    """Chromium's own /favicon.ico request, made whatever the page declares."""
    return console_error.endswith("/favicon.ico)") and "404" in console_error


def test_swagger_ui_registers_logs_in_authorizes_and_creates_a_task(
    make_live_stack: Any, page: Page
) -> None:
    stack = make_live_stack()
    document = stack.app.test_client().get("/api/v1/openapi.json").get_json()
    watch = PageWatch.attach(page)
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.set_default_navigation_timeout(STEP_TIMEOUT_MS)

    response = page.goto(f"{stack.base_url}/docs")
    assert response is not None
    assert response.status == 200
    policy = response.headers["content-security-policy"]
    script_sources = next(
        part for part in policy.split(";") if part.strip().startswith("script-src")
    )
    assert "'unsafe-inline'" not in script_sources, policy

    # The page rendered every operation of the document.
    expect(page.locator(".opblock")).to_have_count(
        operation_count(document), timeout=STEP_TIMEOUT_MS
    )

    email = f"swagger-{uuid.uuid4().hex[:8]}@example.com"
    password = "a long and unguessable passphrase"
    register = Operation(page, "auth", "register").try_it_out()
    registered = register.type_body(
        {"email": email, "password": password, "full_name": "Grace Hopper"}
    ).response_json(201)
    assert registered["email"] == email
    register.collapse()

    login = Operation(page, "auth", "login").try_it_out()
    tokens = login.type_body({"email": email, "password": password}).response_json(200)
    login.collapse()
    authorize(page, tokens["access_token"])

    title = f"Try Swagger UI {uuid.uuid4().hex[:6]}"
    create = Operation(page, "tasks", "createTask").try_it_out()
    created = create.type_body(
        {"title": title, "priority": "high", "tags": ["docs"]}
    ).response_json(201)
    assert created["title"] == title
    create.collapse()

    list_tasks = Operation(page, "tasks", "listTasks").try_it_out()
    # Swagger UI prefills every filter from its example; a person clears them to see all tasks.
    listed = list_tasks.clear_optional_parameters(keep=frozenset({"page", "page_size"}))
    body = listed.execute(200)
    expect(body).to_contain_text(title)

    # The picture: the request the page sent and the live answer holding the new task.
    list_tasks.block.locator(".responses-wrapper").evaluate(
        "element => element.scrollIntoView({block: 'start'})"
    )
    save_screenshot(page, SCREENSHOT)

    watch.settle()
    api_calls = [urlsplit(url).path for url in watch.requests if "/api/v1/" in url]
    assert "/api/v1/tasks" in api_calls, watch.requests  # the page itself made the calls
    assert watch.remote_requests() == []
    assert watch.csp_violations == []
    assert watch.page_errors == []
    assert [error for error in watch.console_errors if not is_browser_favicon_miss(error)] == []


def save_screenshot(page: Page, path: Path) -> None:
    """Write a screenshot of the visible page to ``path`` (creating its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
