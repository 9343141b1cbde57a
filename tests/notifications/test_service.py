"""Queueing emails (dedupe) and sending one (lease, retries with backoff, permanent failures)."""

from __future__ import annotations

import logging
import smtplib
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.notifications import service
from app.notifications.mailer import SmtpMailer
from app.notifications.models import EmailMessage, EmailState
from tests.notifications.helpers import FailingMailer, RecordingMailer, settings
from tests.support.smtp import SmtpSink, html_of, text_of


def queue(session: Session, key: str = "test:1", **kwargs: object) -> EmailMessage:
    arguments: dict[str, object] = {
        "to": "ada@example.com",
        "template": "welcome",
        "context": {"full_name": "Ada", "email": "ada@example.com"},
        "dedupe_key": key,
        **kwargs,
    }
    message = service.queue_email(session, **arguments)  # type: ignore[arg-type]
    assert message is not None
    session.commit()
    return message


def reload(session: Session, message: EmailMessage) -> EmailMessage:
    session.expire_all()
    stored = session.get(EmailMessage, message.id)
    assert stored is not None
    return stored


def make_due(session: Session, message: EmailMessage) -> None:
    session.execute(
        update(EmailMessage)
        .where(EmailMessage.id == message.id)
        .values(next_attempt_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()


# --- queueing ------------------------------------------------------------------------------


def test_queue_email_adds_a_pending_email_due_now(db_session: Session) -> None:
    message = queue(db_session)
    stored = reload(db_session, message)
    assert stored.state == EmailState.PENDING.value
    assert stored.attempts == 0
    assert stored.delays == []
    assert stored.next_attempt_at <= utcnow()
    assert stored.subject == "Welcome to flask-service-template"


def test_the_same_dedupe_key_queues_nothing_the_second_time(db_session: Session) -> None:
    queue(db_session, "welcome:event-1")
    again = service.queue_email(
        db_session,
        to="ada@example.com",
        template="welcome",
        context={"full_name": "Ada", "email": "ada@example.com"},
        dedupe_key="welcome:event-1",
    )
    assert again is None
    count = db_session.scalar(select(func.count()).select_from(EmailMessage))
    assert count == 1


def test_a_concurrent_duplicate_loses_quietly_and_the_transaction_stays_usable(
    db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pre-check can miss a row inserted meanwhile; the unique index and SAVEPOINT catch it."""
    queue(db_session, "welcome:race")
    monkeypatch.setattr(service, "dedupe_key_taken", lambda *_args: False)
    again = service.queue_email(
        db_session,
        to="ada@example.com",
        template="welcome",
        context={"full_name": None, "email": "ada@example.com"},
        dedupe_key="welcome:race",
    )
    assert again is None
    queue(db_session, "welcome:other")  # the caller's transaction still works
    assert db_session.scalar(select(func.count()).select_from(EmailMessage)) == 2


def test_an_unknown_template_is_a_programming_error(db_session: Session) -> None:
    with pytest.raises(ValueError, match="unknown email template"):
        service.queue_email(
            db_session, to="ada@example.com", template="nope", context={}, dedupe_key="x"
        )


def test_sealed_context_is_stored_encrypted_and_used_when_sending(db_session: Session) -> None:
    secret = "plain-secret-" + uuid.uuid4().hex
    message = queue(
        db_session,
        template="password_reset",
        context={"full_name": "Ada", "expires_minutes": 30},
        sealed_context={"token": secret},
    )
    row = db_session.execute(
        text("SELECT CAST(m AS text) FROM email_messages m WHERE id = :id"), {"id": message.id}
    ).scalar_one()
    assert secret not in row
    mailer = RecordingMailer()
    service.deliver(db_session, message_id=message.id, mailer=mailer, settings=settings())
    [sent] = mailer.sent
    assert secret in text_of(sent)
    assert reload(db_session, message).sealed_context is None  # erased once sent


# --- sending -------------------------------------------------------------------------------


def test_deliver_sends_once_and_records_success(db_session: Session) -> None:
    message = queue(db_session)
    mailer = RecordingMailer()
    result = service.deliver(db_session, message_id=message.id, mailer=mailer, settings=settings())
    assert result == service.DeliveryResult(EmailState.SUCCEEDED)
    [sent] = mailer.sent
    assert sent["To"] == "ada@example.com"
    assert sent["Message-ID"].startswith(f"<{message.id}@")
    assert "Welcome to flask-service-template" in text_of(sent)
    assert "http://127.0.0.1:8000/" in html_of(sent)
    stored = reload(db_session, message)
    assert stored.state == EmailState.SUCCEEDED.value
    assert stored.attempts == 1
    assert stored.sent_at is not None
    assert stored.lease_until is None

    again = service.deliver(db_session, message_id=message.id, mailer=mailer, settings=settings())
    assert again.state is None
    assert len(mailer.sent) == 1


def test_a_transient_failure_schedules_a_retry_with_backoff(db_session: Session) -> None:
    message = queue(db_session)
    mailer = FailingMailer(lambda: smtplib.SMTPServerDisconnected("Connection closed"))
    policy = settings(EMAIL_BACKOFF_BASE_SECONDS=10.0, EMAIL_BACKOFF_CAP_SECONDS=100.0)
    before = utcnow()
    result = service.deliver(db_session, message_id=message.id, mailer=mailer, settings=policy)
    assert result.state is EmailState.PENDING
    assert result.retry_in is not None
    assert 5.0 <= result.retry_in <= 10.0  # full jitter, at least half the base
    stored = reload(db_session, message)
    assert stored.state == EmailState.PENDING.value
    assert stored.attempts == 1
    assert stored.delays == [round(result.retry_in, 3)]
    assert stored.last_error == "SMTPServerDisconnected: Connection closed"
    assert stored.lease_until is None
    assert stored.next_attempt_at >= before + timedelta(seconds=result.retry_in)

    # Not due yet: a duplicate message (or an early sweep) does nothing.
    early = service.deliver(db_session, message_id=message.id, mailer=mailer, settings=policy)
    assert early.state is None
    assert mailer.calls == 1


def test_transient_failures_end_dead_after_the_maximum_logged_as_an_error(
    db_session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    message = queue(db_session)
    mailer = FailingMailer(lambda: ConnectionRefusedError(111, "Connection refused"))
    policy = settings(
        EMAIL_MAX_ATTEMPTS=4, EMAIL_BACKOFF_BASE_SECONDS=10.0, EMAIL_BACKOFF_CAP_SECONDS=25.0
    )
    states = []
    with caplog.at_level(logging.INFO, logger="app.notifications"):
        for _ in range(4):
            make_due(db_session, message)
            result = service.deliver(
                db_session, message_id=message.id, mailer=mailer, settings=policy
            )
            states.append(result.state)
    assert states == [EmailState.PENDING] * 3 + [EmailState.DEAD]
    stored = reload(db_session, message)
    assert stored.state == EmailState.DEAD.value
    assert stored.attempts == 4
    assert len(stored.delays) == 3
    # Each delay lies in [base / 2, min(cap, base * 2^(n-1))]: the ceiling doubles, then caps.
    for attempt, delay in enumerate(stored.delays, start=1):
        assert 5.0 <= delay <= min(25.0, 10.0 * 2 ** (attempt - 1))
    assert "ConnectionRefusedError" in (stored.last_error or "")
    [dead_log] = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert dead_log.getMessage() == "email dead: every attempt failed"
    assert dead_log.email_id == str(message.id)  # type: ignore[attr-defined]

    # Dead is final.
    make_due(db_session, message)
    assert (
        service.deliver(db_session, message_id=message.id, mailer=mailer, settings=policy).state
        is None
    )


def test_a_permanent_failure_is_not_retried(db_session: Session) -> None:
    message = queue(db_session)
    mailer = FailingMailer(
        lambda: smtplib.SMTPRecipientsRefused({"ada@example.com": (550, b"No such user")})
    )
    result = service.deliver(db_session, message_id=message.id, mailer=mailer, settings=settings())
    assert result == service.DeliveryResult(EmailState.FAILED)
    stored = reload(db_session, message)
    assert stored.state == EmailState.FAILED.value
    assert stored.attempts == 1
    assert stored.delays == []
    assert stored.last_error == "SMTPRecipientsRefused: 550"


def test_an_invalid_address_fails_without_contacting_the_server(db_session: Session) -> None:
    message = queue(db_session, to="not an address")
    mailer = RecordingMailer()
    result = service.deliver(db_session, message_id=message.id, mailer=mailer, settings=settings())
    assert result.state is EmailState.FAILED
    assert mailer.sent == []
    assert reload(db_session, message).last_error == "InvalidAddress: invalid recipient address"


def test_a_template_error_is_a_permanent_failure(db_session: Session) -> None:
    message = queue(db_session, context={"email": "ada@example.com"})  # full_name missing
    result = service.deliver(
        db_session, message_id=message.id, mailer=RecordingMailer(), settings=settings()
    )
    assert result.state is EmailState.FAILED
    assert "UndefinedError" in (reload(db_session, message).last_error or "")


def test_a_leased_email_is_not_claimed_until_the_lease_expires(db_session: Session) -> None:
    message = queue(db_session)
    claimed = service.claim(db_session, message_id=message.id, settings=settings())
    assert claimed is not None
    assert claimed.attempts == 1
    assert claimed.lease_until is not None
    # Another worker (or a duplicate message) cannot take it while the lease runs...
    assert service.claim(db_session, message_id=message.id, settings=settings()) is None
    # ...but can once it expired: the first worker died mid-send.
    later = claimed.lease_until + timedelta(seconds=1)
    again = service.claim(db_session, message_id=message.id, settings=settings(), now=later)
    assert again is not None
    assert again.attempts == 2


def test_the_lease_covers_a_whole_smtp_conversation() -> None:
    from app.config import load_settings

    slow = load_settings(APP_ENV="testing", EMAIL_LEASE_SECONDS="5", SMTP_TIMEOUT_SECONDS="30")
    assert service.lease_seconds(slow) > 30 * 4


def test_a_worker_that_lost_its_lease_does_not_overwrite_the_new_holder(
    db_session: Session,
) -> None:
    message = queue(db_session)

    class TakenOverMailer:
        def send(self, _message: object) -> None:
            # Meanwhile the lease expired and another worker claimed the email.
            db_session.execute(
                update(EmailMessage)
                .where(EmailMessage.id == message.id)
                .values(lease_until=utcnow() + timedelta(minutes=5)),
                execution_options={"synchronize_session": False},  # another process
            )
            db_session.commit()

    service.deliver(
        db_session, message_id=message.id, mailer=TakenOverMailer(), settings=settings()
    )
    stored = reload(db_session, message)
    assert stored.state == EmailState.PENDING.value
    assert stored.lease_until is not None


def test_a_real_server_that_greylists_gets_the_email_on_the_retry(db_session: Session) -> None:
    message = queue(db_session)
    with SmtpSink() as sink:
        sink.handler.rcpt_replies.append("451 4.7.1 Greylisted, try again later")
        mailer = SmtpMailer(host="127.0.0.1", port=sink.port, security="none")
        first = service.deliver(
            db_session, message_id=message.id, mailer=mailer, settings=settings()
        )
        assert first.state is EmailState.PENDING
        assert sink.messages == []
        make_due(db_session, message)
        second = service.deliver(
            db_session, message_id=message.id, mailer=mailer, settings=settings()
        )
        assert second.state is EmailState.SUCCEEDED
        assert len(sink.messages) == 1
    stored = reload(db_session, message)
    assert stored.attempts == 2
    assert len(stored.delays) == 1


# --- sweep ---------------------------------------------------------------------------------


def test_the_sweep_finds_due_unleased_pending_emails_only(db_session: Session) -> None:
    now = utcnow()
    due = queue(db_session, "due")
    fresh = queue(db_session, "fresh")
    later = queue(db_session, "later")
    leased = queue(db_session, "leased")
    sent = queue(db_session, "sent")
    old = now - timedelta(minutes=5)
    for message, values in [
        (due, {"next_attempt_at": old}),
        (fresh, {"next_attempt_at": now - timedelta(seconds=5)}),
        (later, {"next_attempt_at": now + timedelta(minutes=5)}),
        (leased, {"next_attempt_at": old, "lease_until": now + timedelta(minutes=1)}),
        (sent, {"next_attempt_at": old, "state": EmailState.SUCCEEDED.value}),
    ]:
        db_session.execute(
            update(EmailMessage).where(EmailMessage.id == message.id).values(**values)
        )
    db_session.commit()
    ids = service.due_email_ids(db_session, now=now, grace=timedelta(seconds=30), batch=10)
    assert ids == [due.id]
    expired = now + timedelta(minutes=10)  # the lease ran out: the worker died
    assert set(service.due_email_ids(db_session, now=expired, grace=timedelta(0), batch=10)) == {
        due.id,
        fresh.id,
        later.id,
        leased.id,
    }
    assert len(service.due_email_ids(db_session, now=expired, grace=timedelta(0), batch=2)) == 2
