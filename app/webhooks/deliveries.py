"""The delivery state machine: fan-out, lease claim, outcome, retries, circuit breaker, sweep.

A delivery row is the source of truth. A worker claims it with a short lease, does the HTTP
exchange with no transaction open, then records the outcome; the beat sweep re-enqueues whatever
is due and unclaimed, so a killed worker, a lost message or a dead broker never loses a delivery.
Each public function is one transaction, except ``fan_out_deliveries`` (an event consumer's
work: the dispatcher commits it together with its idempotency marker).
"""

from __future__ import annotations

import functools
import logging
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    Table,
    Update,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from app.config import Settings, current_settings
from app.core.database import relaxed_commit, utcnow
from app.core.messaging import send_task
from app.core.retry import backoff_delay
from app.events.models import OutboxEvent
from app.events.service import WEBHOOK_DISABLED, record
from app.webhooks.connection import transaction
from app.webhooks.crypto import SecretUnreadable, decrypt_secret
from app.webhooks.models import DeliveryState, Webhook, WebhookDelivery
from app.webhooks.sender import Outcome, OutcomeKind
from app.webhooks.signing import message_body

logger = logging.getLogger(__name__)

DELIVER_TASK = "webhooks.deliver"
ALL_EVENTS = "*"
ENDPOINT_DISABLED = "endpoint disabled"
LEASE_MARGIN_SECONDS = 1.0
# The tables, for the Core statements of the hot path.
_DELIVERIES = cast(Table, WebhookDelivery.__table__)
_WEBHOOKS = cast(Table, Webhook.__table__)


@dataclass(frozen=True)
class Attempt:
    """What a worker needs for one claimed attempt (no ORM object crosses the I/O)."""

    delivery_id: uuid.UUID
    webhook_id: uuid.UUID
    lease_token: uuid.UUID
    number: int
    url: str
    secret: str | None  # None when it cannot be decrypted
    body: str


def lease_seconds(settings: Settings) -> float:
    """How long a claim lasts: at least one whole HTTP exchange, or a live attempt is repeated."""
    exchange = settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS + settings.WEBHOOK_READ_TIMEOUT_SECONDS
    return max(settings.WEBHOOK_LEASE_SECONDS, exchange + LEASE_MARGIN_SECONDS)


def _owner_of(payload: Mapping[str, Any]) -> int | None:
    owner = payload.get("owner_id", payload.get("user_id"))
    return owner if isinstance(owner, int) and not isinstance(owner, bool) else None


@dataclass(frozen=True)
class NewDelivery:
    """A delivery the fan-out created, and whether its endpoint's last attempts succeeded."""

    id: uuid.UUID
    endpoint_healthy: bool


def create_deliveries(session: Session, *, event: OutboxEvent) -> list[uuid.UUID]:
    """The ids of ``fan_out_deliveries``' new deliveries (no commit)."""
    return [delivery.id for delivery in fan_out_deliveries(session, event=event)]


def fan_out_deliveries(session: Session, *, event: OutboxEvent) -> list[NewDelivery]:
    """Add one delivery per active endpoint of the event's owner that wants it (no commit), and
    tell which endpoints are not in a failure streak.

    The caller (the ``webhooks.fan_out`` consumer) has them committed with its "consumed"
    marker and then attempted; the unique (webhook, event) pair makes a second run fail rather
    than deliver twice.
    """
    owner_id = _owner_of(event.payload)
    if owner_id is None:
        return []
    # Core, not the ORM: one SELECT and one INSERT (of every row at once), no unit of work.
    endpoints = session.execute(
        select(_WEBHOOKS.c.id, _WEBHOOKS.c.event_types, _WEBHOOKS.c.failing_since).where(
            _WEBHOOKS.c.owner_id == owner_id, _WEBHOOKS.c.is_active.is_(True)
        )
    ).all()
    now = utcnow()
    queued_until = now + timedelta(seconds=lease_seconds(current_settings()))
    wanted = [
        endpoint
        for endpoint in endpoints
        if ALL_EVENTS in endpoint.event_types or event.name in endpoint.event_types
    ]
    created = [NewDelivery(uuid.uuid4(), endpoint.failing_since is None) for endpoint in wanted]
    rows = [
        {
            "id": delivery.id,
            "webhook_id": endpoint.id,
            "event_id": event.id,
            "event_name": event.name,
            "payload": event.payload,
            "event_created_at": event.created_at,
            "state": DeliveryState.PENDING.value,
            "attempts": 0,
            "delays": [],
            "next_attempt_at": now,
            "queued_until": queued_until,
            "created_at": now,
            "updated_at": now,
        }
        for delivery, endpoint in zip(created, wanted, strict=True)
    ]
    if rows:
        session.execute(insert(_DELIVERIES), rows)
    return created


@functools.cache
def _claim_statement(dialect: str) -> Update:
    """The claim, built once per process (Core, not the ORM: no per-call construction, cache
    key or ORM bookkeeping; each costs more Python than the statement costs PostgreSQL)."""
    deliveries, webhooks = _DELIVERIES.c, _WEBHOOKS.c
    now: BindParameter[datetime] = bindparam("now")
    return (
        update(_DELIVERIES)
        .where(
            deliveries.id == bindparam("delivery_id"),
            deliveries.state == DeliveryState.PENDING.value,
            deliveries.next_attempt_at <= now,
            or_(deliveries.lease_until.is_(None), deliveries.lease_until < now),
            webhooks.id == deliveries.webhook_id,
        )
        .values(lease_until=bindparam("lease_until"), lease_token=bindparam("token"))
        .returning(
            deliveries.webhook_id,
            deliveries.attempts,
            deliveries.event_name,
            deliveries.event_created_at,
            deliveries.payload,
            webhooks.url,
            webhooks.secret_ciphertext,
            webhooks.is_active,
            relaxed_commit(dialect),
        )
    )


def claim_delivery(
    session: Session, *, delivery_id: uuid.UUID, now: datetime | None = None
) -> Attempt | None:
    """Lease a due, unclaimed delivery for one attempt; None if it is not due or someone has it.

    One statement: the lease is taken and what the attempt needs (the delivery and its
    endpoint) comes back with it. A lease lost in a database crash only allows one more attempt
    (deliveries are at-least-once and carry a stable webhook-id), so its commit skips the flush.
    """
    settings = current_settings()
    now = now or utcnow()
    token = uuid.uuid4()
    claimed = session.execute(
        _claim_statement(session.get_bind().dialect.name),
        {
            "delivery_id": delivery_id,
            "now": now,
            "lease_until": now + timedelta(seconds=lease_seconds(settings)),
            "token": token,
        },
    ).one_or_none()
    session.commit()
    if claimed is None:  # not due, leased by someone else, or its endpoint was deleted
        return None
    if not claimed.is_active:
        _fail_leased(session, delivery_id=delivery_id, token=token, now=now)
        return None
    try:
        secret: str | None = decrypt_secret(settings, claimed.secret_ciphertext)
    except SecretUnreadable:
        secret = None
    return Attempt(
        delivery_id=delivery_id,
        webhook_id=claimed.webhook_id,
        lease_token=token,
        number=claimed.attempts + 1,
        url=claimed.url,
        secret=secret,
        body=message_body(
            event_name=claimed.event_name,
            occurred_at=claimed.event_created_at,
            payload=claimed.payload,
        ),
    )


def _fail_leased(
    session: Session, *, delivery_id: uuid.UUID, token: uuid.UUID, now: datetime
) -> None:
    """Fail the delivery just leased for a disabled endpoint (not attempted)."""
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.lease_token == token)
        .values(_finished(DeliveryState.FAILED, error=ENDPOINT_DISABLED, now=now)),
        execution_options={"synchronize_session": False},
    )
    session.commit()


def record_outcome(
    session: Session,
    *,
    attempt: Attempt,
    outcome: Outcome,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Store the outcome of ``attempt``; returns the countdown to enqueue the retry with, if any.

    A retry due later than ``CELERY_MAX_COUNTDOWN_SECONDS`` is left to the sweep, as is a retry
    whose message is lost. A stale attempt (its lease was taken over, or the delivery replayed)
    changes nothing.
    """
    now = now or utcnow()
    if outcome.kind is OutcomeKind.SUCCESS:
        _record_success(session, attempt=attempt, outcome=outcome, now=now)
        return None
    # Several statements under row locks, committed durably: a real transaction.
    with transaction(session) as locked:
        return _record_failure(locked, attempt=attempt, outcome=outcome, now=now, rng=rng)


def _record_failure(
    session: Session,
    *,
    attempt: Attempt,
    outcome: Outcome,
    now: datetime,
    rng: random.Random | None,
) -> float | None:
    settings = current_settings()
    webhook_id = session.scalar(
        select(WebhookDelivery.webhook_id).where(WebhookDelivery.id == attempt.delivery_id)
    )
    # Endpoint first, then delivery: the order every writer uses, so they cannot deadlock.
    webhook = (
        session.get(Webhook, webhook_id, with_for_update=True, populate_existing=True)
        if webhook_id
        else None
    )
    delivery = session.scalars(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.id == attempt.delivery_id,
            WebhookDelivery.lease_token == attempt.lease_token,
            WebhookDelivery.state == DeliveryState.PENDING.value,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if webhook is None or delivery is None:
        session.rollback()
        logger.info(
            "stale webhook attempt ignored", extra={"delivery_id": str(attempt.delivery_id)}
        )
        return None
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    delivery.lease_until = None
    delivery.lease_token = None
    countdown: float | None = None
    if outcome.kind is OutcomeKind.TRANSIENT and delivery.attempts < settings.WEBHOOK_MAX_ATTEMPTS:
        countdown = _schedule_retry(delivery, outcome, settings, now=now, rng=rng)
    elif outcome.kind is OutcomeKind.TRANSIENT:
        _finish(delivery, DeliveryState.DEAD, now=now, error=outcome.error)
        logger.error(
            "webhook delivery dead: attempts exhausted",
            extra={
                "delivery_id": str(delivery.id),
                "webhook_id": str(webhook.id),
                "event_id": str(delivery.event_id),
                "attempts": delivery.attempts,
                "error": outcome.error,
            },
        )
    else:
        _finish(delivery, DeliveryState.FAILED, now=now, error=outcome.error)
    if _trip_breaker(session, webhook, delivery, now=now, settings=settings):
        countdown = None
    session.commit()
    return countdown


@functools.cache
def _success_statement(dialect: str) -> Update:
    """The success mark, built once per process (see ``_claim_statement``)."""
    deliveries, webhooks = _DELIVERIES.c, _WEBHOOKS.c
    now: BindParameter[datetime] = bindparam("now")
    failing_since = (
        select(webhooks.failing_since).where(webhooks.id == deliveries.webhook_id).scalar_subquery()
    )
    return (
        update(_DELIVERIES)
        .where(
            deliveries.id == bindparam("delivery_id"),
            deliveries.lease_token == bindparam("token"),
            deliveries.state == DeliveryState.PENDING.value,
        )
        .values(
            attempts=deliveries.attempts + 1,
            last_attempt_at=now,
            last_status_code=bindparam("status_code"),
            delivered_at=now,
            **_finished(DeliveryState.SUCCEEDED, error=None, now=now),
        )
        .returning(failing_since.label("failing_since"), relaxed_commit(dialect))
    )


def _record_success(session: Session, *, attempt: Attempt, outcome: Outcome, now: datetime) -> None:
    """Mark the attempt's delivery succeeded, then end its endpoint's failure streak if any.

    One statement on a healthy endpoint: the delivery is marked and the endpoint's streak read
    back in the same ``UPDATE ... RETURNING``; the endpoint row is written (and locked) only
    when a streak must end, in a statement of its own, so no transaction ever holds the two rows
    (the breaker and ``update_webhook`` lock the endpoint first). A success lost in a database
    crash leaves the delivery pending with its lease run out: it is sent once more, with the
    same webhook-id (at-least-once), so the commit need not wait for the disk.
    """
    recorded = session.execute(
        _success_statement(session.get_bind().dialect.name),
        {
            "delivery_id": attempt.delivery_id,
            "token": attempt.lease_token,
            "now": now,
            "status_code": outcome.status_code,
        },
    ).one_or_none()
    session.commit()
    if recorded is None:  # a stale attempt: its lease was taken over, or it was replayed
        logger.info(
            "stale webhook attempt ignored", extra={"delivery_id": str(attempt.delivery_id)}
        )
        return
    if recorded.failing_since is not None:
        session.execute(
            update(Webhook)
            .where(Webhook.id == attempt.webhook_id, Webhook.failing_since.is_not(None))
            .values(failing_since=None),
            execution_options={"synchronize_session": False},
        )
        session.commit()


def _schedule_retry(
    delivery: WebhookDelivery,
    outcome: Outcome,
    settings: Settings,
    *,
    now: datetime,
    rng: random.Random | None,
) -> float | None:
    cap = settings.WEBHOOK_BACKOFF_CAP_SECONDS
    if outcome.retry_after is not None:
        delay = min(outcome.retry_after, cap)
    else:
        delay = backoff_delay(
            delivery.attempts, base=settings.WEBHOOK_BACKOFF_BASE_SECONDS, cap=cap, rng=rng
        )
    delivery.delays = [*delivery.delays, round(delay, 3)]
    delivery.next_attempt_at = now + timedelta(seconds=delay)
    if delay > settings.CELERY_MAX_COUNTDOWN_SECONDS:
        # Too long for a countdown message (the broker's visibility timeout): the sweep's job.
        delivery.queued_until = None
        return None
    delivery.queued_until = delivery.next_attempt_at + timedelta(seconds=lease_seconds(settings))
    return delay


def _finish(
    delivery: WebhookDelivery, state: DeliveryState, *, now: datetime, error: str | None
) -> None:
    for name, value in _finished(state, error=error, now=now).items():
        setattr(delivery, name, value)


def _finished(
    state: DeliveryState, *, error: str | None, now: datetime | BindParameter[datetime]
) -> dict[str, Any]:
    """The values of a delivery that is done: its final state, no schedule, no lease."""
    return {
        "state": state.value,
        "last_error": error,
        "next_attempt_at": None,
        "lease_until": None,
        "lease_token": None,
        "queued_until": None,
        "updated_at": now,
    }


def _trip_breaker(
    session: Session,
    webhook: Webhook,
    delivery: WebhookDelivery,
    *,
    now: datetime,
    settings: Settings,
) -> bool:
    """Count a failed attempt; disable the endpoint once every attempt failed for the window."""
    if webhook.failing_since is None:
        webhook.failing_since = now
        return False
    failing_for = (now - webhook.failing_since).total_seconds()
    if not webhook.is_active or failing_for < settings.WEBHOOK_DISABLE_AFTER_SECONDS:
        return False
    webhook.is_active = False
    webhook.disabled_reason = (
        f"Every delivery attempt failed since {webhook.failing_since.isoformat(timespec='seconds')}"
        f"; last error: {delivery.last_error or 'unknown'}"
    )[:300]
    if delivery.state == DeliveryState.PENDING.value:
        _finish(delivery, DeliveryState.FAILED, now=now, error=delivery.last_error)
    stop_pending(session, webhook.id, now=now)
    # The owner is emailed from this event (users.webhook_disabled_email).
    record(
        session,
        WEBHOOK_DISABLED,
        {
            "webhook_id": str(webhook.id),
            "owner_id": webhook.owner_id,
            "url": webhook.url,
            "reason": webhook.disabled_reason,
        },
    )
    logger.warning(
        "webhook disabled by the circuit breaker",
        extra={"webhook_id": str(webhook.id), "owner_id": webhook.owner_id},
    )
    return True


def stop_pending(session: Session, webhook_id: uuid.UUID, *, now: datetime) -> None:
    """Fail every pending delivery of a disabled endpoint (a replay can revive one later)."""
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.webhook_id == webhook_id,
            WebhookDelivery.state == DeliveryState.PENDING.value,
        )
        .values(_finished(DeliveryState.FAILED, error=ENDPOINT_DISABLED, now=now)),
        execution_options={"synchronize_session": "fetch"},
    )


def enqueue_due(session: Session, *, now: datetime | None = None) -> list[uuid.UUID]:
    """Mark a batch of due, unclaimed, not-queued deliveries as queued and return their ids.

    Rows are picked with ``FOR UPDATE SKIP LOCKED``, so several sweeps never pick the same ones.
    """
    settings = current_settings()
    now = now or utcnow()
    due = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.state == DeliveryState.PENDING.value,
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
            or_(WebhookDelivery.queued_until.is_(None), WebhookDelivery.queued_until < now),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(settings.WEBHOOK_SWEEP_BATCH)
        .with_for_update(skip_locked=True)
    )
    ids = list(
        session.scalars(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(due.scalar_subquery()))
            .values(queued_until=now + timedelta(seconds=lease_seconds(settings)))
            .returning(WebhookDelivery.id),
            execution_options={"synchronize_session": False},
        ).all()
    )
    session.commit()
    return ids


def purge_finished(session: Session, *, now: datetime | None = None) -> int:
    """Delete finished deliveries older than ``WEBHOOK_DELIVERY_RETENTION_DAYS``."""
    settings = current_settings()
    cutoff = (now or utcnow()) - timedelta(days=settings.WEBHOOK_DELIVERY_RETENTION_DAYS)
    result = session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.state != DeliveryState.PENDING.value,
            WebhookDelivery.created_at < cutoff,
        ),
        execution_options={"synchronize_session": False},
    )
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def enqueue_deliveries(delivery_ids: Sequence[uuid.UUID]) -> int:
    """Send ``webhooks.deliver`` for each id; stop at the first broker failure (the sweep's job)."""
    sent = 0
    for delivery_id in delivery_ids:
        try:
            send_task(DELIVER_TASK, (str(delivery_id),))
        except Exception:
            logger.warning("could not enqueue a webhook delivery; the sweep will", exc_info=True)
            break
        sent += 1
    return sent
