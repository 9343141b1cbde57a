"""The Celery tasks of notifications, run in-process: send one email, sweep due ones."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

from flask import Flask
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.notifications import background, service
from app.notifications.models import EmailMessage, EmailState


def queued_welcome(session: Session, *, dedupe_key: str) -> EmailMessage:
    """A welcome email to Ada, queued and committed."""
    message = service.queue_email(
        session,
        to="ada@example.com",
        template="welcome",
        context={"full_name": "Ada", "email": "ada@example.com"},
        dedupe_key=dedupe_key,
    )
    assert message is not None
    session.commit()
    return message


def test_send_email_uses_the_configured_backend(app: Flask, db_session: Session) -> None:
    message = queued_welcome(db_session, dedupe_key="welcome:background")

    assert background.send_email.run(str(message.id)) == "succeeded"
    assert background.send_email.run(str(message.id)) is None  # already sent: nothing to do

    # The testing profile uses the console backend: the email is a .eml file under instance/.
    mail_dir = Path(app.instance_path) / "mail"
    saved = [
        message_from_bytes(path.read_bytes(), policy=policy.default)
        for path in mail_dir.glob("*.eml")
    ]
    mine = [item for item in saved if str(message.id) in item["Message-ID"]]
    assert len(mine) == 1
    assert mine[0]["Subject"] == "Welcome to flask-service-template"


def test_the_sweep_enqueues_due_emails(db_session: Session) -> None:
    message = queued_welcome(db_session, dedupe_key="welcome:sweep")
    assert background.sweep_due_emails.run() == 0  # within the grace of its own message
    db_session.execute(
        update(EmailMessage)
        .where(EmailMessage.id == message.id)
        .values(next_attempt_at=utcnow() - timedelta(minutes=5))
    )
    db_session.commit()
    assert background.sweep_due_emails.run() == 1
    db_session.refresh(message)
    assert message.state == EmailState.PENDING.value  # the sweep only enqueues
