"""Celery tasks of the outbox: dispatch one event to its consumers, sweep unpublished rows."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from celery import Task, shared_task
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import current_settings
from app.core.database import relax_commit_durability, utcnow
from app.core.messaging import send_task
from app.core.retry import backoff_delay
from app.events.models import ConsumedEvent, OutboxEvent
from app.events.registry import Consumer, FollowUp, consumers_for
from app.events.relay import publish_pending
from app.extensions import db

logger = logging.getLogger(__name__)

DISPATCH_MAX_RETRIES = 12


def run_consumer(session: Session, consumer: Consumer, event: OutboxEvent) -> list[FollowUp]:
    """Apply ``consumer`` to ``event`` once: its effect and the marker commit together."""
    if session.get(ConsumedEvent, (event.id, consumer.name)) is not None:
        return []
    try:
        # Lost in a database crash, the effect goes with its marker and with the dispatched
        # mark committed after it, so the event is dispatched again and the consumer redone:
        # the at-least-once the consumers are written for, without a disk flush per event.
        relax_commit_durability(session)
        follow_ups = consumer.handler(session, event)
        session.add(ConsumedEvent(event_id=event.id, consumer=consumer.name))
        session.commit()
    except IntegrityError:
        # Another worker consumed the same event concurrently; its effect stands.
        session.rollback()
        if session.get(ConsumedEvent, (event.id, consumer.name)) is not None:
            return []
        raise
    except Exception:
        session.rollback()
        raise
    return follow_ups


def send_follow_ups(follow_ups: list[FollowUp]) -> None:
    """Enqueue follow-up tasks; a broker failure leaves them to their feature's sweep."""
    for follow_up in follow_ups:
        try:
            send_task(follow_up.task_name, follow_up.args, countdown=follow_up.countdown)
        except Exception:
            logger.warning("could not enqueue %s; its sweep will pick it up", follow_up.task_name)


@shared_task(name="events.dispatch", bind=True, max_retries=DISPATCH_MAX_RETRIES)
def dispatch(self: Task, event_id: str) -> int:
    """Hand event ``event_id`` to every consumer registered for its name."""
    # One connection for the whole dispatch: the consumers' commits and the "dispatched" mark
    # check out (and ping) it once.
    with db.one_connection() as session:
        return _dispatch(self, session, event_id)


def _dispatch(self: Task, session: Session, event_id: str) -> int:
    event = session.get(OutboxEvent, uuid.UUID(event_id))
    if event is None:
        logger.warning("event not found", extra={"event_id": event_id})
        return 0
    handled = 0
    for consumer in consumers_for(event.name):
        try:
            follow_ups = run_consumer(session, consumer, event)
        except Exception as exc:
            attempt = self.request.retries + 1
            logger.warning(
                "consumer failed",
                exc_info=True,
                extra={"event_id": event_id, "consumer": consumer.name, "attempt": attempt},
            )
            if attempt > DISPATCH_MAX_RETRIES:
                logger.error(
                    "consumer gave up", extra={"event_id": event_id, "consumer": consumer.name}
                )
                raise
            settings = current_settings()
            raise self.retry(
                exc=exc,
                countdown=backoff_delay(
                    attempt, base=1.0, cap=settings.CELERY_MAX_COUNTDOWN_SECONDS
                ),
            ) from exc
        send_follow_ups(follow_ups)
        handled += 1
    # The consumers' effects are committed durably above; a lost "dispatched" mark only means
    # the event is dispatched again, and the consumers skip what they already did.
    relax_commit_durability(session)
    session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id == event.id, OutboxEvent.dispatched_at.is_(None))
        .values(dispatched_at=utcnow())
    )
    session.commit()
    return handled


@shared_task(name="events.sweep_outbox")
def sweep_outbox() -> int:
    """Publish events the kick missed (broker down, process killed), and again those whose
    dispatch never completed (message lost with a killed worker or a restarted Redis); run by
    beat."""
    settings = current_settings()
    batch = settings.OUTBOX_SWEEP_BATCH
    total = 0
    for _ in range(100):  # bounded: at most 100 batches per run
        published = publish_pending(
            db.session(),
            batch=batch,
            older_than=timedelta(seconds=settings.OUTBOX_SWEEP_GRACE_SECONDS),
        )
        total += published
        if published < batch:
            break
    republished = publish_pending(
        db.session(),
        batch=batch,
        undispatched_for=timedelta(seconds=settings.OUTBOX_REDISPATCH_AFTER_SECONDS),
    )
    if republished:
        logger.warning("outbox sweep republished undispatched events", extra={"count": republished})
    if total:
        logger.info("outbox sweep published events", extra={"count": total})
    return total + republished
