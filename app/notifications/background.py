"""Celery tasks of notifications: send one email, and sweep emails whose message went missing."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from celery import shared_task

from app.config import current_settings
from app.core.database import utcnow
from app.core.messaging import send_task
from app.extensions import db
from app.notifications import service
from app.notifications.mailer import build_mailer

logger = logging.getLogger(__name__)


@shared_task(name=service.SEND_EMAIL_TASK)
def send_email(message_id: str) -> str | None:
    """Send email ``message_id`` once if it is due; schedule its retry after a transient failure.

    A retry within CELERY_MAX_COUNTDOWN_SECONDS is also enqueued with a countdown; a longer one
    (or one whose enqueue failed) waits in the database for ``notifications.sweep_due_emails``.
    """
    settings = current_settings()
    result = service.deliver(
        db.session(),
        message_id=uuid.UUID(message_id),
        mailer=build_mailer(settings),
        settings=settings,
    )
    retry_in = result.retry_in
    if retry_in is not None and retry_in <= settings.CELERY_MAX_COUNTDOWN_SECONDS:
        try:
            send_task(service.SEND_EMAIL_TASK, (message_id,), countdown=retry_in)
        except Exception:
            logger.warning(
                "could not enqueue the email retry; the sweep will", extra={"email_id": message_id}
            )
    return None if result.state is None else result.state.value


@shared_task(name="notifications.sweep_due_emails")
def sweep_due_emails() -> int:
    """Enqueue pending emails that are due and unclaimed (lost messages, long retries)."""
    settings = current_settings()
    session = db.session()
    ids = service.due_email_ids(
        session,
        now=utcnow(),
        grace=timedelta(seconds=settings.EMAIL_SWEEP_GRACE_SECONDS),
        batch=settings.EMAIL_SWEEP_BATCH,
    )
    session.commit()  # hold no transaction while publishing
    sent = 0
    for message_id in ids:
        try:
            send_task(service.SEND_EMAIL_TASK, (str(message_id),))
        except Exception:
            logger.warning("email sweep could not reach the broker; next sweep retries")
            break
        sent += 1
    if sent:
        logger.info("email sweep enqueued due emails", extra={"count": sent})
    return sent
