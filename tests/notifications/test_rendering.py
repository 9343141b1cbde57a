"""Email templates: both bodies for every template, HTML escaped, subjects plain."""

from __future__ import annotations

from typing import Any

import pytest
from jinja2 import UndefinedError

from app.notifications.rendering import TEMPLATES, render_body, render_subject

COMMON = {"service_name": "Tasks", "public_base_url": "https://app.example.com"}
CONTEXTS: dict[str, dict[str, Any]] = {
    "welcome": {"full_name": "Ada", "email": "ada@example.com"},
    "password_reset": {"full_name": "Ada", "expires_minutes": 30, "token": "tok-123"},
    "task_due": {
        "full_name": None,
        "task_id": 7,
        "title": "Ship it",
        "due_at": "2030-01-31T09:30:00+00:00",
        "due_at_display": "2030-01-31 09:30 UTC",
    },
    "webhook_disabled": {"full_name": "Ada", "webhook_id": "wh-1", "url": None, "reason": None},
}


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_renders_text_and_html(template: str) -> None:
    body = render_body(template, {**COMMON, **CONTEXTS[template]})
    assert body.text.strip()
    assert body.html.lstrip().startswith("<!doctype html>")
    assert "https://app.example.com" in body.text + body.html
    assert render_subject(template, {**COMMON, **CONTEXTS[template]})


def test_user_text_is_escaped_in_html_only() -> None:
    context = {**COMMON, **CONTEXTS["task_due"], "title": "<script>alert(1)</script> & co"}
    body = render_body("task_due", context)
    assert "<script>" not in body.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in body.html
    assert "<script>alert(1)</script> & co" in body.text
    assert render_subject("task_due", context) == (
        "Reminder: <script>alert(1)</script> & co is due soon"
    )


def test_the_reset_link_carries_the_token_under_the_public_url() -> None:
    body = render_body("password_reset", {**COMMON, **CONTEXTS["password_reset"]})
    link = "https://app.example.com/reset-password?token=tok-123"
    assert link in body.text
    assert f'href="{link}"' in body.html
    assert "30 minutes" in body.text


def test_a_subject_stays_on_one_bounded_line() -> None:
    context = {**COMMON, **CONTEXTS["task_due"], "title": "a\r\nBcc: eve@example.com " + "x" * 300}
    subject = render_subject("task_due", context)
    assert "\n" not in subject
    assert "\r" not in subject
    assert len(subject) == 255


def test_a_missing_variable_is_an_error_not_a_hole() -> None:
    with pytest.raises(UndefinedError):
        render_body("welcome", {**COMMON, "email": "ada@example.com"})


def test_an_unknown_template_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown email template"):
        render_body("nope", COMMON)
    with pytest.raises(ValueError, match="unknown email template"):
        render_subject("nope", COMMON)
