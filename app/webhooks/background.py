"""Celery side of webhooks: fan events out to endpoints, deliver, sweep due deliveries, purge."""

from __future__ import annotations

import functools
import logging
import uuid

from celery import shared_task
from sqlalchemy.orm import Session

from app.config import Settings, current_settings
from app.core.database import utcnow
from app.core.messaging import send_task
from app.events.models import OutboxEvent
from app.events.registry import FollowUp, consumer
from app.extensions import db
from app.observability.metrics import WEBHOOK_DELIVERY_ATTEMPTS
from app.webhooks import deliveries
from app.webhooks.connection import CLAIMED, StaleConnection, attempt_session
from app.webhooks.deliveries import DELIVER_TASK, Attempt
from app.webhooks.sender import HttpOptions, Outcome, OutcomeKind, post
from app.webhooks.signing import signature_headers
from app.webhooks.ssrf import UrlPolicy

logger = logging.getLogger(__name__)

OUTCOMES = frozenset(kind.value for kind in OutcomeKind)


# First attempts the dispatching worker makes itself per event (the rest go through the queue).
FIRST_ATTEMPTS_HERE = 1


@consumer("webhooks.fan_out", ["*"])
def fan_out(session: Session, event: OutboxEvent) -> list[FollowUp]:
    """One delivery per subscribed endpoint of the event's owner; each is then sent.

    The first attempt of the first delivery to an endpoint not in a failure streak is made by
    the dispatching worker itself, right after the commit: one task, one broker round trip and
    one worker hop fewer between an event and its webhook (the dominant cost at 50 events/s).
    It is the same claim, SSRF check, signature and outcome as ``webhooks.deliver``. An
    endpoint that is failing (timeouts included) gets every attempt through the notifications
    queue, so a slow endpoint holds the dispatching worker for one attempt at most.
    """
    follow_ups: list[FollowUp] = []
    here = FIRST_ATTEMPTS_HERE
    for delivery in deliveries.fan_out_deliveries(session, event=event):
        if delivery.endpoint_healthy and here > 0:
            here -= 1
            attempt = functools.partial(first_attempt, delivery.id)
            follow_ups.append(FollowUp(DELIVER_TASK, (str(delivery.id),), here=attempt))
        else:
            follow_ups.append(FollowUp(DELIVER_TASK, (str(delivery.id),)))
    return follow_ups


def first_attempt(delivery_id: uuid.UUID) -> str:
    """``webhooks.deliver`` done by the worker that dispatched the event (``fan_out``)."""
    outcome = attempt_delivery(delivery_id)
    # The worker counts webhooks.deliver's outcomes from the task's result; this attempt ran
    # inside events.dispatch, so it is counted here.
    WEBHOOK_DELIVERY_ATTEMPTS.labels(outcome if outcome in OUTCOMES else "skipped").inc()
    return outcome


def http_options(settings: Settings) -> HttpOptions:
    """Timeouts, response cap and User-Agent from the settings."""
    return HttpOptions(
        connect_timeout=settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS,
        read_timeout=settings.WEBHOOK_READ_TIMEOUT_SECONDS,
        max_response_bytes=settings.WEBHOOK_MAX_RESPONSE_BYTES,
        user_agent=f"{settings.SERVICE_NAME}-webhooks/1.0",
    )


def send_attempt(attempt: Attempt, settings: Settings) -> Outcome:
    """Sign and POST one claimed attempt (the SSRF guard runs again, on this attempt's DNS)."""
    if attempt.secret is None:
        return Outcome(
            OutcomeKind.PERMANENT,
            error="the signing secret cannot be decrypted (was WEBHOOK_SECRET_KEY changed?)",
        )
    headers = signature_headers(
        secret=attempt.secret,
        message_id=str(attempt.delivery_id),
        sent_at=utcnow(),
        body=attempt.body,
    )
    return post(
        attempt.url,
        body=attempt.body.encode(),
        headers=headers,
        policy=UrlPolicy.from_settings(settings),
        options=http_options(settings),
    )


def attempt_delivery(delivery_id: uuid.UUID) -> str:
    """Claim, send and record one attempt of a delivery; returns what happened.

    Never holds a transaction open during the HTTP exchange; a retry due soon is enqueued with a
    countdown, a later one (or a lost message) is found by ``sweep_due_deliveries``.
    """
    settings = current_settings()
    try:
        return _attempt(delivery_id, settings)
    except StaleConnection:  # PostgreSQL restarted since the last attempt; nothing was done
        return _attempt(delivery_id, settings)


def _attempt(delivery_id: uuid.UUID, settings: Settings) -> str:
    # The claim and the outcome share the process's kept connection (no checkout or ping per
    # attempt), each one statement committing on its own (app.webhooks.connection).
    with attempt_session() as session:
        attempt = deliveries.claim_delivery(session, delivery_id=delivery_id)
        session.info[CLAIMED] = True
        if attempt is None:
            return "not due or claimed elsewhere"
        outcome = send_attempt(attempt, settings)
        countdown = deliveries.record_outcome(session, attempt=attempt, outcome=outcome)
    if countdown is not None:
        try:
            send_task(DELIVER_TASK, (str(delivery_id),), countdown=countdown)
        except Exception:
            logger.warning(
                "could not enqueue a webhook retry; the sweep will",
                extra={"delivery_id": str(delivery_id)},
            )
    return outcome.kind.value


@shared_task(name="webhooks.deliver")
def deliver(delivery_id: str) -> str:
    """Make one attempt of delivery ``delivery_id`` if it is due and nobody else holds it."""
    return attempt_delivery(uuid.UUID(delivery_id))


@shared_task(name="webhooks.sweep_due_deliveries")
def sweep_due_deliveries() -> int:
    """Enqueue due deliveries nobody holds or has queued (killed workers, lost messages, long
    retry schedules); run by beat."""
    due = deliveries.enqueue_due(db.session(), now=utcnow())
    sent = deliveries.enqueue_deliveries(due)
    if due:
        logger.info("webhook sweep enqueued deliveries", extra={"count": sent, "due": len(due)})
    return sent


@shared_task(name="webhooks.purge_old_deliveries")
def purge_old_deliveries() -> int:
    """Delete finished deliveries past their retention; run by beat."""
    return deliveries.purge_finished(db.session())
