"""Password reset: the request never reveals whether an account exists, the token arrives by
email (a real SMTP server), works once, expires, is never stored readable, and a reset ends every
session of the account."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import current_app
from flask.testing import FlaskClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.events.background import run_consumer
from app.events.models import OutboxEvent
from app.events.registry import FollowUp, consumers_for
from app.notifications import service as notifications
from app.notifications.mailer import SmtpMailer
from app.notifications.models import EmailMessage, EmailState
from app.users.models import PasswordResetToken, User
from app.users.reset_service import hash_reset_token
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.support.smtp import SmtpSink, html_of, text_of
from tests.users.helpers import bearer, login

REQUEST = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"
NEW_PASSWORD = "a brand new passphrase"
TOKEN_IN_LINK = re.compile(r"/reset-password\?token=([A-Za-z0-9_\-]+)")


@pytest.fixture
def smtp() -> Any:
    with SmtpSink() as sink:
        yield sink


def dispatch_pending(session: Session) -> list[FollowUp]:
    """Run every consumer of every event not consumed yet (what the worker does)."""
    follow_ups: list[FollowUp] = []
    for event in session.scalars(select(OutboxEvent).order_by(OutboxEvent.created_at)).all():
        for consumer in consumers_for(event.name):
            follow_ups += run_consumer(session, consumer, event)
    return follow_ups


def send_emails(session: Session, follow_ups: list[FollowUp], sink: SmtpSink) -> None:
    """Run the queued ``notifications.send_email`` follow-ups against the SMTP sink."""
    mailer = SmtpMailer(host="127.0.0.1", port=sink.port, security="none")
    settings = current_app.extensions["settings"]
    for follow_up in follow_ups:
        assert follow_up.task_name == "notifications.send_email"
        result = notifications.deliver(
            session, message_id=uuid.UUID(follow_up.args[0]), mailer=mailer, settings=settings
        )
        assert result.state is EmailState.SUCCEEDED


def request_reset_by_email(
    client: FlaskClient, session: Session, sink: SmtpSink, email: str
) -> str:
    """Ask for a reset through the API, let the consumers and the mailer run; the token."""
    assert client.post(REQUEST, json={"email": email}).status_code == 202
    send_emails(session, dispatch_pending(session), sink)
    message = sink.messages[-1]
    match = TOKEN_IN_LINK.search(text_of(message))
    assert match is not None
    return match.group(1)


def confirm(client: FlaskClient, token: str, password: str = NEW_PASSWORD) -> Any:
    return client.post(CONFIRM, json={"token": token, "new_password": password})


def assert_invalid_token(response: Any) -> None:
    assert response.status_code == 400, response.json
    assert response.json["code"] == "invalid_token"
    assert response.json["message"] == "The reset token is invalid, expired or already used."


# --- request -------------------------------------------------------------------------------


def test_request_answers_the_same_whether_or_not_the_account_exists(
    client: FlaskClient, db_session: Session, user: User
) -> None:
    known = client.post(REQUEST, json={"email": user.email})
    unknown = client.post(REQUEST, json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.get_data() == unknown.get_data()
    assert known.json == {
        "message": "If an account exists for this email, a password reset link has been sent to it."
    }
    # The same work either way: one event carrying the normalised email, nothing else yet.
    events = db_session.scalars(
        select(OutboxEvent).where(OutboxEvent.name == "user.password_reset_requested")
    ).all()
    # Both requests commit in one test transaction, so their order is not defined: compare sets.
    assert sorted(event.payload["email"] for event in events) == sorted(
        [user.email, "nobody@example.com"]
    )
    assert all(set(event.payload) == {"email"} for event in events)
    assert db_session.scalars(select(PasswordResetToken)).all() == []


def test_request_normalises_the_email(client: FlaskClient, db_session: Session) -> None:
    assert client.post(REQUEST, json={"email": "  Ada@Example.COM "}).status_code == 202
    event = db_session.scalars(select(OutboxEvent)).one()
    assert event.payload == {"email": "ada@example.com"}


@pytest.mark.parametrize(
    "body", [{}, {"email": "not-an-email"}, {"email": "ada@example.com", "extra": 1}]
)
def test_request_validates_its_body(client: FlaskClient, body: dict[str, Any]) -> None:
    assert client.post(REQUEST, json=body).status_code == 422


def test_unknown_and_inactive_accounts_get_no_token_and_no_email(
    client: FlaskClient, db_session: Session
) -> None:
    inactive = UserFactory(is_active=False)
    for email in ("nobody@example.com", inactive.email):
        assert client.post(REQUEST, json={"email": email}).status_code == 202
    assert dispatch_pending(db_session) == []
    assert db_session.scalars(select(PasswordResetToken)).all() == []
    assert db_session.scalars(select(EmailMessage)).all() == []


# --- the emailed token ---------------------------------------------------------------------


def test_the_token_arrives_by_email_and_resets_the_password_once(
    client: FlaskClient, db_session: Session, user: User, smtp: SmtpSink
) -> None:
    token = request_reset_by_email(client, db_session, smtp, user.email)

    [message] = smtp.messages
    assert message["To"] == user.email
    assert message["Subject"] == "Reset your flask-service-template password"
    link = f"http://127.0.0.1:8000/reset-password?token={token}"
    assert link in text_of(message)
    assert f'href="{link}"' in html_of(message)
    assert "30 minutes" in text_of(message)

    assert confirm(client, token).status_code == 204
    assert login(client, user, NEW_PASSWORD)["access_token"]
    old = client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
    )
    assert old.status_code == 401

    # Single use.
    assert_invalid_token(confirm(client, token, "yet another passphrase"))
    assert login(client, user, NEW_PASSWORD)


def test_a_reset_revokes_every_session_of_the_account(
    client: FlaskClient, db_session: Session, user: User, smtp: SmtpSink
) -> None:
    sessions = [login(client, user) for _ in range(3)]
    for pair in sessions:
        assert (
            client.get("/api/v1/users/me", headers=bearer(pair["access_token"])).status_code == 200
        )

    token = request_reset_by_email(client, db_session, smtp, user.email)
    assert confirm(client, token).status_code == 204

    for pair in sessions:
        me = client.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
        assert me.status_code == 401
        refresh = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert refresh.status_code == 401


def test_an_expired_token_is_refused(
    client: FlaskClient, db_session: Session, user: User, smtp: SmtpSink
) -> None:
    token = request_reset_by_email(client, db_session, smtp, user.email)
    row = db_session.scalars(select(PasswordResetToken)).one()
    assert timedelta(minutes=29) < row.expires_at - row.created_at <= timedelta(minutes=30)
    db_session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.id == row.id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db_session.commit()
    assert_invalid_token(confirm(client, token))
    assert login(client, user)  # the old password still works


def test_unknown_expired_and_used_tokens_get_one_message(client: FlaskClient) -> None:
    assert_invalid_token(confirm(client, "x" * 43))


def test_a_reset_kills_the_other_outstanding_tokens(
    client: FlaskClient, db_session: Session, user: User, smtp: SmtpSink
) -> None:
    first = request_reset_by_email(client, db_session, smtp, user.email)
    second = request_reset_by_email(client, db_session, smtp, user.email)
    assert first != second
    assert confirm(client, second).status_code == 204
    assert_invalid_token(confirm(client, first, "yet another passphrase"))


def test_an_account_gets_at_most_three_live_reset_emails(
    client: FlaskClient, db_session: Session, user: User, smtp: SmtpSink
) -> None:
    """Requests keep answering 202, but a victim's mailbox cannot be flooded."""
    tokens = [request_reset_by_email(client, db_session, smtp, user.email) for _ in range(3)]
    assert client.post(REQUEST, json={"email": user.email}).status_code == 202
    assert dispatch_pending(db_session) == []
    assert len(smtp.messages) == 3
    # Once those expire (or one is used), a new request sends again.
    db_session.execute(update(PasswordResetToken).values(expires_at=utcnow()))
    db_session.commit()
    fresh = request_reset_by_email(client, db_session, smtp, user.email)
    assert fresh not in tokens
    assert len(smtp.messages) == 4


def test_confirm_validates_the_new_password(
    client: FlaskClient, db_session: Session, user: User, smtp: SmtpSink
) -> None:
    token = request_reset_by_email(client, db_session, smtp, user.email)
    response = confirm(client, token, "short")
    assert response.status_code == 422
    assert "new_password" in response.json["errors"]["json"]
    assert confirm(client, token).status_code == 204  # the token was not spent


def test_a_deactivated_account_cannot_use_its_token(
    client: FlaskClient, db_session: Session, user: User, smtp: SmtpSink
) -> None:
    token = request_reset_by_email(client, db_session, smtp, user.email)
    user.is_active = False
    db_session.commit()
    assert_invalid_token(confirm(client, token))


def test_the_plain_token_is_never_stored_or_logged(
    client: FlaskClient,
    db_session: Session,
    user: User,
    smtp: SmtpSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def stored_text() -> str:
        rows: list[str] = []
        for table in ("password_reset_tokens", "email_messages", "outbox_events"):
            # A whole row cast to text: every column, whatever its type.
            rows += db_session.execute(text(f"SELECT CAST(t AS text) FROM {table} t")).scalars()
        return "\n".join(rows)

    with caplog.at_level(logging.DEBUG):
        assert client.post(REQUEST, json={"email": user.email}).status_code == 202
        follow_ups = dispatch_pending(db_session)
        queued = stored_text()  # the email is queued, not sent yet
        send_emails(db_session, follow_ups, smtp)
    match = TOKEN_IN_LINK.search(text_of(smtp.messages[0]))
    assert match is not None
    token = match.group(1)

    assert token not in queued
    assert token not in stored_text()
    row = db_session.scalars(select(PasswordResetToken)).one()
    assert row.token_hash == hash_reset_token(token)
    email = db_session.scalars(select(EmailMessage)).one()
    assert email.sealed_context is None  # erased once sent
    # Everything but the test's own SMTP server ("mail.log", which logs what it receives).
    logged = "\n".join(
        f"{record.getMessage()} {vars(record)}"
        for record in caplog.records
        if not record.name.startswith("mail.log")
    )
    assert "email sent" in logged
    assert token not in logged
    assert "Someone asked to reset" not in logged  # nor the body


# --- documentation -------------------------------------------------------------------------


def test_both_endpoints_are_documented(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").json
    request = spec["paths"][REQUEST]["post"]
    assert request["operationId"] == "requestPasswordReset"
    assert set(request["responses"]) >= {"202", "422"}
    confirm_operation = spec["paths"][CONFIRM]["post"]
    assert confirm_operation["operationId"] == "confirmPasswordReset"
    assert set(confirm_operation["responses"]) >= {"204", "400", "422"}
    example = confirm_operation["responses"]["400"]["content"]["application/json"]["example"]
    assert example["code"] == "invalid_token"
