"""End to end with a real worker on real Redis and a real SMTP server: registering through the
HTTP API delivers the welcome email; a mail server down at first gets it after retries."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.notifications.models import EmailMessage, EmailState
from tests.support.live import wait_for
from tests.support.services import free_port
from tests.support.smtp import SmtpSink, html_of, text_of

pytestmark = pytest.mark.slow


def register(stack: Any, email: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{stack.base_url}/api/v1/auth/register",
        data=json.dumps({"email": email, "password": "a" * 12, "full_name": "Ada"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        body: dict[str, Any] = json.load(response)
        return body


def stored_email(stack: Any) -> EmailMessage | None:
    with stack.app.app_context():
        db.session.remove()
        return db.session().scalars(select(EmailMessage)).one_or_none()


def smtp_stack(make_live_stack: Any, port: int, **overrides: str) -> Any:
    return make_live_stack(
        MAIL_BACKEND="smtp",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(port),
        SMTP_SECURITY="none",
        SMTP_TIMEOUT_SECONDS="2",
        **overrides,
    )


def test_registering_delivers_the_welcome_email(make_live_stack: Any) -> None:
    with SmtpSink() as sink:
        stack = smtp_stack(make_live_stack, sink.port)
        worker = stack.start_worker()

        register(stack, "ada@example.com")

        [message] = wait_for(lambda: sink.messages, 30, "the welcome email")
        assert message["To"] == "ada@example.com"
        assert message["Subject"] == "Welcome to flask-service-template"
        assert "Welcome to flask-service-template" in text_of(message)
        assert "<strong>ada@example.com</strong>" in html_of(message)
        stored = wait_for(
            lambda: (email := stored_email(stack)) and email.state == "succeeded" and email,
            10,
            "the email recorded as sent",
        )
        assert stored.attempts == 1
        assert "Welcome" not in worker.log()  # the body is never logged
    assert len(sink.messages) == 1


def test_a_mail_server_down_at_first_gets_the_email_after_retries(make_live_stack: Any) -> None:
    port = free_port()
    stack = smtp_stack(
        make_live_stack,
        port,
        EMAIL_BACKOFF_BASE_SECONDS="0.5",
        EMAIL_BACKOFF_CAP_SECONDS="1",
        EMAIL_MAX_ATTEMPTS="20",  # room for a slow test machine before the server comes up
    )
    stack.start_worker()
    register(stack, "ada@example.com")

    # Nothing listens on the port: connection refused, retried with backoff.
    failed_twice = wait_for(
        lambda: (email := stored_email(stack)) and email.attempts >= 2 and email,
        30,
        "two failed attempts",
    )
    assert failed_twice.state == EmailState.PENDING.value
    assert "ConnectionRefusedError" in (failed_twice.last_error or "")

    with SmtpSink(port) as sink:
        [message] = wait_for(lambda: sink.messages, 30, "the email once the server is up")
        assert message["To"] == "ada@example.com"
        sent = wait_for(
            lambda: (email := stored_email(stack)) and email.state == "succeeded" and email,
            10,
            "the email recorded as sent",
        )
    # Attempts are counted when claimed: the second may have been in flight when the server
    # came up and succeeded, so at least one refused attempt came before the successful one.
    assert sent.attempts >= 2
    assert len(sent.delays) == sent.attempts - 1
    assert all(0.25 <= delay <= 1.0 for delay in sent.delays)
    assert len(sink.messages) == 1
