"""Celery tasks of the outbox: dispatch one event to its consumers, sweep unpublished rows."""

from __future__ import annotations

import functools
import logging
import uuid
from datetime import timedelta
from typing import cast

from celery import Task, shared_task
from sqlalchemy import Insert, Table, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.config import current_settings
from app.core.database import relax_commit_durability, relaxed_commit, utcnow
from app.core.messaging import send_task
from app.core.retry import backoff_delay
from app.events.models import ConsumedEvent, OutboxEvent
from app.events.registry import Consumer, FollowUp, consumers_for
from app.events.relay import publish_pending
from app.extensions import db

logger = logging.getLogger(__name__)

DISPATCH_MAX_RETRIES = 12
_CONSUMED = cast(Table, ConsumedEvent.__table__)
_OUTBOX = cast(Table, OutboxEvent.__table__)


@functools.cache
def _marker_statement(dialect: str) -> Insert:
    """The "consumed" marker's insert, built once per process (Core, not the ORM)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(_CONSUMED)
        .values(
            event_id=bindparam("event_id"),
            consumer=bindparam("consumer"),
            consumed_at=bindparam("now"),
        )
        .on_conflict_do_nothing(index_elements=["event_id", "consumer"])
        .returning(_CONSUMED.c.event_id, relaxed_commit(dialect))
    )


def _claim_marker(session: Session, event_id: uuid.UUID, consumer_name: str) -> bool:
    """Insert the "consumed" marker first; False when it already exists (handled before).

    One ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` instead of a look-up and a later insert.
    A concurrent run of the same consumer waits on the marker's unique key until the first one
    commits (then finds it) or rolls back (then takes it). The statement also relaxes the
    transaction's commit (``relaxed_commit``), without a ``SET LOCAL`` of its own.
    """
    statement = _marker_statement(session.get_bind().dialect.name)
    parameters = {"event_id": event_id, "consumer": consumer_name, "now": utcnow()}
    return session.execute(statement, parameters).first() is not None


def run_consumer(
    session: Session, consumer: Consumer, event: OutboxEvent, *, last: bool = False
) -> list[FollowUp]:
    """Apply ``consumer`` to ``event`` once: its effect and the marker commit together.

    With ``last``, the event's "dispatched" mark commits with them too (one transaction fewer
    per event); it is set even when the consumer had handled the event before.
    """
    try:
        # Lost in a database crash, the effect goes with its marker and with the dispatched
        # mark, so the event is dispatched again and the consumer redone: the at-least-once the
        # consumers are written for, without a disk flush per event.
        follow_ups: list[FollowUp] = []
        if _claim_marker(session, event.id, consumer.name):
            follow_ups = consumer.handler(session, event)
        if last:
            _mark_dispatched(session, event.id)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return follow_ups


_MARK_DISPATCHED = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("event_id"), _OUTBOX.c.dispatched_at.is_(None))
    .values(dispatched_at=bindparam("now"))
)


def _mark_dispatched(session: Session, event_id: uuid.UUID) -> None:
    session.execute(_MARK_DISPATCHED, {"event_id": event_id, "now": utcnow()})


def send_follow_ups(follow_ups: list[FollowUp]) -> list[FollowUp]:
    """Enqueue follow-up tasks (a broker failure leaves them to their feature's sweep); return
    those this worker does itself (``FollowUp.here``), for ``do_here``."""
    for follow_up in follow_ups:
        if follow_up.here is not None:
            continue
        try:
            send_task(follow_up.task_name, follow_up.args, countdown=follow_up.countdown)
        except Exception:
            logger.warning("could not enqueue %s; its sweep will pick it up", follow_up.task_name)
    return [follow_up for follow_up in follow_ups if follow_up.here is not None]


def do_here(follow_ups: list[FollowUp]) -> None:
    """Do the follow-ups meant for this worker; one that fails is left to its feature's sweep."""
    for follow_up in follow_ups:
        if follow_up.here is None:
            continue
        try:
            follow_up.here()
        except Exception:
            logger.warning(
                "%s failed in the dispatching worker; its sweep will pick it up",
                follow_up.task_name,
                exc_info=True,
            )


@shared_task(name="events.dispatch", bind=True, max_retries=DISPATCH_MAX_RETRIES)
def dispatch(self: Task, event_id: str) -> int:
    """Hand event ``event_id`` to every consumer registered for its name."""
    # One connection for the whole dispatch: the consumers' commits and the "dispatched" mark
    # check out (and ping) it once. What the consumers left for this worker to do itself runs
    # after that connection went back to the pool.
    here: list[FollowUp] = []
    try:
        with db.one_connection() as session:
            return _dispatch(self, session, event_id, here)
    finally:
        do_here(here)  # also when a later consumer failed: the earlier ones have committed


def _dispatch(self: Task, session: Session, event_id: str, here: list[FollowUp]) -> int:
    event = session.get(OutboxEvent, uuid.UUID(event_id))
    if event is None:
        logger.warning("event not found", extra={"event_id": event_id})
        return 0
    consumers = consumers_for(event.name)
    if not consumers:
        relax_commit_durability(session)
        _mark_dispatched(session, event.id)
        session.commit()
        return 0
    handled = 0
    for index, consumer in enumerate(consumers):
        try:
            # The last consumer's transaction also marks the event dispatched: every earlier
            # one has committed by then (a failure raises and retries before reaching it).
            follow_ups = run_consumer(session, consumer, event, last=index == len(consumers) - 1)
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
        here += send_follow_ups(follow_ups)
        handled += 1
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
