"""Queueing emails, and sending one: claim it with a lease, try once, record what happened.

The ``email_messages`` row is the source of truth. A worker claims a due row with a short lease,
talks to the mail server outside any transaction, then records the outcome: sent, retry later
(exponential backoff, the delay recorded on the row), failed for good, or dead once the attempts
ran out. A killed worker's lease expires and the sweep hands the row to another.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage as MimeMessage
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings, current_settings
from app.core.database import utcnow
from app.core.retry import backoff_delay
from app.events.registry import FollowUp
from app.notifications.mailer import Mailer, build_message, describe, is_transient
from app.notifications.models import EmailMessage, EmailState
from app.notifications.rendering import (
    TEMPLATES,
    common_context,
    render_body,
    render_subject,
)
from app.notifications.sealing import seal, unseal

logger = logging.getLogger(__name__)

SEND_EMAIL_TASK = "notifications.send_email"
# An SMTP conversation is a handful of socket operations, each bounded by SMTP_TIMEOUT_SECONDS;
# a lease shorter than that would let a second worker send an email the first is still sending.
SMTP_OPERATIONS_PER_SEND = 8


def queue_email(
    session: Session,
    *,
    to: str,
    template: str,
    context: dict[str, Any],
    dedupe_key: str,
    sealed_context: dict[str, Any] | None = None,
) -> EmailMessage | None:
    """Add an email to send (no commit); None when one with ``dedupe_key`` already exists.

    ``context`` must be JSON and holds no secret; ``sealed_context`` (a reset token) is stored
    encrypted and erased once the email is finished. The insert runs in a SAVEPOINT so that a
    concurrent insert of the same key loses quietly without spoiling the caller's transaction.
    """
    if template not in TEMPLATES:
        raise ValueError(f"unknown email template {template!r}")
    if dedupe_key_taken(session, dedupe_key):
        return None
    settings = current_settings()
    now = utcnow()
    message = EmailMessage(
        id=uuid.uuid4(),
        to_address=to,
        template=template,
        subject=render_subject(template, {**common_context(settings), **context}),
        context=context,
        sealed_context=seal(settings, sealed_context) if sealed_context else None,
        dedupe_key=dedupe_key,
        state=EmailState.PENDING.value,
        attempts=0,
        delays=[],
        next_attempt_at=now,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError as exc:
        # PostgreSQL names the constraint; SQLite names the column.
        text = str(exc.orig)
        if "uq_email_messages_dedupe_key" in text or "email_messages.dedupe_key" in text:
            return None
        raise
    return message


def dedupe_key_taken(session: Session, dedupe_key: str) -> bool:
    """True when an email with ``dedupe_key`` exists (committed or in this transaction)."""
    query = select(EmailMessage.id).where(EmailMessage.dedupe_key == dedupe_key)
    return session.scalar(query) is not None


def withdraw_pending(session: Session, *, dedupe_key: str, now: datetime | None = None) -> bool:
    """Delete the email queued under ``dedupe_key`` if it is still waiting to be sent (no commit):
    its reason went away (a reminder of a task since done, moved or deleted). An email a worker
    holds right now is left to finish. The key is free again afterwards. True if one was deleted.
    """
    now = now or utcnow()
    statement = delete(EmailMessage).where(
        EmailMessage.dedupe_key == dedupe_key,
        EmailMessage.state == EmailState.PENDING.value,
        or_(EmailMessage.lease_until.is_(None), EmailMessage.lease_until < now),
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def send_follow_ups(messages: Iterable[EmailMessage | None]) -> list[FollowUp]:
    """``notifications.send_email`` for each newly queued email (a consumer's follow-ups)."""
    return [FollowUp(SEND_EMAIL_TASK, (str(message.id),)) for message in messages if message]


@dataclass(frozen=True)
class DeliveryResult:
    """What one ``deliver`` call did; ``state`` is None when the email was not claimed."""

    state: EmailState | None
    retry_in: float | None = None


def lease_seconds(settings: Settings) -> float:
    """How long a claim lasts: at least a whole SMTP conversation of timeouts."""
    conversation = settings.SMTP_TIMEOUT_SECONDS * SMTP_OPERATIONS_PER_SEND
    return max(settings.EMAIL_LEASE_SECONDS, conversation + 1.0)


def claim(
    session: Session, *, message_id: uuid.UUID, settings: Settings, now: datetime | None = None
) -> EmailMessage | None:
    """Lease a due, unclaimed pending email and count the attempt (committed); None otherwise.

    The attempt is counted when claimed, not when finished, so an email that kills its worker
    every time still runs out of attempts.
    """
    now = now or utcnow()
    statement = (
        update(EmailMessage)
        .where(
            EmailMessage.id == message_id,
            EmailMessage.state == EmailState.PENDING.value,
            EmailMessage.next_attempt_at <= now,
            or_(EmailMessage.lease_until.is_(None), EmailMessage.lease_until < now),
        )
        .values(
            lease_until=now + timedelta(seconds=lease_seconds(settings)),
            attempts=EmailMessage.attempts + 1,
        )
        .returning(EmailMessage)
    )
    try:
        message = session.scalars(
            statement, execution_options={"populate_existing": True}
        ).one_or_none()
        session.commit()
    except Exception:
        session.rollback()
        raise
    return message


def compose(message: EmailMessage, settings: Settings) -> MimeMessage:
    """Render ``message``'s templates into the MIME message to send."""
    context = {**common_context(settings), **message.context}
    if message.sealed_context:
        context.update(unseal(settings, message.sealed_context))
    body = render_body(message.template, context)
    return build_message(
        sender=settings.MAIL_FROM,
        to=message.to_address,
        subject=message.subject,
        text=body.text,
        html=body.html,
        message_id=message.id,
    )


def deliver(
    session: Session, *, message_id: uuid.UUID, mailer: Mailer, settings: Settings
) -> DeliveryResult:
    """Try to send email ``message_id`` once, if it is due and nobody else holds it."""
    message = claim(session, message_id=message_id, settings=settings)
    if message is None or message.lease_until is None:
        return DeliveryResult(None)
    lease = message.lease_until  # ours; the row's may change if the lease expires mid-send
    try:
        mailer.send(compose(message, settings))
    except Exception as exc:
        return _record_failure(session, message, lease, exc, settings)
    _finish(
        session,
        message,
        lease,
        state=EmailState.SUCCEEDED,
        sent_at=utcnow(),
        last_error=None,
    )
    logger.info(
        "email sent",
        extra={"email_id": str(message.id), "template": message.template},
    )
    return DeliveryResult(EmailState.SUCCEEDED)


def _record_failure(
    session: Session,
    message: EmailMessage,
    lease: datetime,
    error: Exception,
    settings: Settings,
) -> DeliveryResult:
    # Only the error's class and the server's reply are kept: never the body or a token.
    detail = describe(error)
    log_fields = {
        "email_id": str(message.id),
        "template": message.template,
        "attempt": message.attempts,
        "error": detail,
    }
    if not is_transient(error):
        _finish(session, message, lease, state=EmailState.FAILED, last_error=detail)
        logger.warning("email failed permanently; not retried", extra=log_fields)
        return DeliveryResult(EmailState.FAILED)
    if message.attempts >= settings.EMAIL_MAX_ATTEMPTS:
        _finish(session, message, lease, state=EmailState.DEAD, last_error=detail)
        logger.error("email dead: every attempt failed", extra=log_fields)
        return DeliveryResult(EmailState.DEAD)
    delay = backoff_delay(
        message.attempts,
        base=settings.EMAIL_BACKOFF_BASE_SECONDS,
        cap=settings.EMAIL_BACKOFF_CAP_SECONDS,
    )
    _finish(
        session,
        message,
        lease,
        state=EmailState.PENDING,
        last_error=detail,
        next_attempt_at=utcnow() + timedelta(seconds=delay),
        delays=[*message.delays, round(delay, 3)],
    )
    logger.warning("email attempt failed; will retry", extra={**log_fields, "retry_in": delay})
    return DeliveryResult(EmailState.PENDING, retry_in=delay)


def _finish(
    session: Session,
    message: EmailMessage,
    lease: datetime,
    *,
    state: EmailState,
    **values: Any,
) -> None:
    """Record an attempt's outcome and release the lease, if the lease is still ours."""
    if state is not EmailState.PENDING:
        values["sealed_context"] = None  # the secret is no longer needed
    try:
        result = session.execute(
            update(EmailMessage)
            .where(
                EmailMessage.id == message.id,
                EmailMessage.state == EmailState.PENDING.value,
                EmailMessage.lease_until == lease,
            )
            .values(state=state.value, lease_until=None, **values)
        )
        session.commit()
    except Exception:
        session.rollback()
        raise
    if result.rowcount == 0:  # type: ignore[attr-defined]
        # The lease expired mid-send and another worker took the email over; its outcome wins.
        logger.warning("email lease lost before recording", extra={"email_id": str(message.id)})


def due_email_ids(
    session: Session, *, now: datetime, grace: timedelta, batch: int
) -> list[uuid.UUID]:
    """Pending emails due for longer than ``grace`` and not leased, oldest first."""
    return list(
        session.scalars(
            select(EmailMessage.id)
            .where(
                EmailMessage.state == EmailState.PENDING.value,
                EmailMessage.next_attempt_at <= now - grace,
                or_(EmailMessage.lease_until.is_(None), EmailMessage.lease_until < now),
            )
            .order_by(EmailMessage.next_attempt_at)
            .limit(batch)
        )
    )
