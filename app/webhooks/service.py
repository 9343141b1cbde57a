"""The rules of webhook endpoints: owned by one user, checked by the SSRF guard, replayable.

Every function is one transaction. Another user's webhook is simply not found (404).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.config import Settings, current_settings
from app.core.database import lock_until_commit, utcnow
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.webhooks.crypto import encrypt_secret, generate_secret
from app.webhooks.deliveries import enqueue_deliveries, lease_seconds, stop_pending
from app.webhooks.models import DeliveryState, Webhook, WebhookDelivery
from app.webhooks.ssrf import UnresolvableHost, UnsafeUrl, UrlPolicy, check_url


@dataclass(frozen=True)
class CreatedWebhook:
    """A new webhook and its signing secret, which is shown this one time only."""

    webhook: Webhook
    secret: str

    def __getattr__(self, name: str) -> Any:
        return getattr(self.webhook, name)


# --- endpoints --------------------------------------------------------------------------------


def _owned(owner_id: int, webhook_id: uuid.UUID) -> Select[Webhook]:
    return select(Webhook).where(Webhook.id == webhook_id, Webhook.owner_id == owner_id)


def get_webhook(session: Session, *, owner_id: int, webhook_id: uuid.UUID) -> Webhook:
    """Webhook ``webhook_id`` of ``owner_id``; ``NotFound`` if missing or someone else's."""
    webhook = session.scalars(_owned(owner_id, webhook_id)).one_or_none()
    if webhook is None:
        raise NotFound("Webhook not found.")
    return webhook


def list_webhooks(
    session: Session, *, owner_id: int, page: int, page_size: int
) -> tuple[Sequence[Webhook], int]:
    """A page of ``owner_id``'s webhooks, oldest first, and their total."""
    query = select(Webhook).where(Webhook.owner_id == owner_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(
        query.order_by(Webhook.created_at, Webhook.id)
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    return items, total


def _checked_url(url: str, settings: Settings) -> str:
    """``url`` if the SSRF guard lets it through now; a 422 on the ``url`` field if not."""
    try:
        check_url(url, UrlPolicy.from_settings(settings))
    except (UnsafeUrl, UnresolvableHost) as exc:
        raise ValidationFailed(str(exc), errors={"json": {"url": [str(exc)]}}) from None
    return url


def create_webhook(session: Session, *, owner_id: int, values: Mapping[str, Any]) -> CreatedWebhook:
    """Register an endpoint for ``owner_id``; its new signing secret is returned this once."""
    settings = current_settings()
    # Two creates at once would both count below the cap and both insert.
    lock_until_commit(session, f"webhooks.create:{owner_id}")
    count = session.scalar(select(func.count()).where(Webhook.owner_id == owner_id)) or 0
    if count >= settings.WEBHOOK_MAX_PER_USER:
        raise Conflict(f"You already have the maximum of {settings.WEBHOOK_MAX_PER_USER} webhooks.")
    secret = generate_secret()
    webhook = Webhook(
        owner_id=owner_id,
        url=_checked_url(values["url"], settings),
        event_types=list(values["event_types"]),
        description=values.get("description"),
        secret_ciphertext=encrypt_secret(settings, secret),
        is_active=True,
    )
    session.add(webhook)
    session.commit()
    return CreatedWebhook(webhook, secret)


def update_webhook(
    session: Session, *, owner_id: int, webhook_id: uuid.UUID, changes: Mapping[str, Any]
) -> Webhook:
    """Change an endpoint; ``is_active=true`` re-enables one the circuit breaker disabled."""
    settings = current_settings()
    # Locked: the circuit breaker of a worker may be deciding about this endpoint right now.
    webhook = session.scalars(_owned(owner_id, webhook_id).with_for_update()).one_or_none()
    if webhook is None:
        raise NotFound("Webhook not found.")
    if "url" in changes:
        webhook.url = _checked_url(changes["url"], settings)
    if "event_types" in changes:
        webhook.event_types = list(changes["event_types"])
    if "description" in changes:
        webhook.description = changes["description"]
    if changes.get("is_active") is True and not webhook.is_active:
        webhook.is_active = True
        webhook.disabled_reason = None
        webhook.failing_since = None
    elif changes.get("is_active") is False and webhook.is_active:
        webhook.is_active = False
        webhook.disabled_reason = "Disabled by its owner."
        stop_pending(session, webhook.id, now=utcnow())
    session.commit()
    return webhook


def delete_webhook(session: Session, *, owner_id: int, webhook_id: uuid.UUID) -> None:
    """Delete an endpoint and its delivery history."""
    webhook = get_webhook(session, owner_id=owner_id, webhook_id=webhook_id)
    session.delete(webhook)
    session.commit()


# --- deliveries seen by the owner ----------------------------------------------------------


def list_deliveries(
    session: Session,
    *,
    owner_id: int,
    webhook_id: uuid.UUID,
    page: int,
    page_size: int,
    state: str | None = None,
) -> tuple[Sequence[WebhookDelivery], int]:
    """A page of one endpoint's deliveries, newest first, optionally in one ``state``."""
    webhook = get_webhook(session, owner_id=owner_id, webhook_id=webhook_id)
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(
        query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    return items, total


def redeliver(
    session: Session, *, owner_id: int, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """Replay a delivery now with a fresh attempt budget (whatever its state), and enqueue it."""
    settings = current_settings()
    webhook = get_webhook(session, owner_id=owner_id, webhook_id=webhook_id)
    delivery = session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook.id)
        .with_for_update()
        # The row as locked now, not as this session last saw it (a worker's claim may have
        # leased it since; that lease must be cleared, or the worker's outcome would count).
        .execution_options(populate_existing=True)
    ).one_or_none()
    if delivery is None:
        raise NotFound("Delivery not found.")
    if not webhook.is_active:
        raise Conflict("The webhook is disabled; enable it first (PATCH is_active=true).")
    now = utcnow()
    delivery.state = DeliveryState.PENDING.value
    delivery.attempts = 0
    delivery.delays = []
    delivery.next_attempt_at = now
    delivery.delivered_at = None
    # A worker still busy with an earlier attempt will find its outcome ignored (new token).
    delivery.lease_until = None
    delivery.lease_token = None
    delivery.queued_until = now + timedelta(seconds=lease_seconds(settings))
    session.commit()
    enqueue_deliveries([delivery.id])
    return delivery
