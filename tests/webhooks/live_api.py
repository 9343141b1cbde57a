"""The API of a live stack over real HTTP (no proxy), for the end-to-end webhook tests: sign
up, subscribe a receiver, create the task that fires the event."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.factories import DEFAULT_PASSWORD

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(
    stack: Any, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """One API request over real HTTP; (status, JSON body)."""
    request = urllib.request.Request(f"{stack.base_url}/api/v1{path}", method=method)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _NO_PROXY.open(request, data=data, timeout=15) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None


def sign_up(stack: Any, email: str = "hooks@example.com") -> str:
    """Register and log in through the API; an access token."""
    credentials = {"email": email, "password": DEFAULT_PASSWORD}
    status, _ = call(stack, "POST", "/auth/register", credentials)
    assert status == 201
    status, tokens = call(stack, "POST", "/auth/login", credentials)
    assert status == 200
    token: str = tokens["access_token"]
    return token


def subscribe(stack: Any, token: str, url: str) -> dict[str, Any]:
    """Create a webhook for ``task.created``; the 201 body (with the secret)."""
    status, webhook = call(
        stack, "POST", "/webhooks", {"url": url, "event_types": ["task.created"]}, token
    )
    assert status == 201, webhook
    return dict(webhook)


def create_task(stack: Any, token: str, title: str) -> int:
    """Create a task through the API; its id."""
    status, task = call(stack, "POST", "/tasks", {"title": title}, token)
    assert status == 201, task
    return int(task["id"])
