"""``/api/v1/webhooks``: your endpoints, their deliveries, and replaying one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from flask import url_for
from flask.views import MethodView

from app.core.api import Blueprint, links
from app.core.auth import current_principal
from app.core.schemas import page_meta
from app.extensions import db
from app.webhooks import schemas, service
from app.webhooks.models import Webhook, WebhookDelivery

blp = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/webhooks",
    description=(
        "Your webhook endpoints. Each event you subscribe to is POSTed as JSON "
        '`{"type", "timestamp", "data"}`, signed per the Standard Webhooks specification '
        "(headers webhook-id, webhook-timestamp, webhook-signature) with the secret shown once "
        "at creation. 2xx is success; 408, 429 and 5xx are retried with exponential backoff; "
        "anything else (redirects included) fails at once. An endpoint whose every attempt "
        "fails for a day is disabled. Someone else's webhook is always 404."
    ),
)

WEBHOOK_ID = "/<uuid:webhook_id>"
_LOCATION = {"Location": {"description": "URL of the new webhook", "schema": {"type": "string"}}}


def _page(items: Sequence[Any], total: int, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "items": items,
        "meta": page_meta(page=args["page"], page_size=args["page_size"], total=total),
    }


@blp.route("")
class Webhooks(MethodView):
    """The collection of your webhooks."""

    @blp.auth()
    @blp.arguments(schemas.WebhookQueryArgs, location="query")
    @blp.response(200, schemas.WebhookPage)
    @blp.errors(422)
    @blp.doc(operationId="listWebhooks")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List your webhooks."""
        items, total = service.list_webhooks(
            db.session(), owner_id=current_principal().user_id, **args
        )
        return _page(items, total, args)

    @blp.auth()
    @blp.arguments(schemas.WebhookCreate)
    @blp.response(201, schemas.WebhookCreated, headers=_LOCATION)
    @blp.errors(400, 409, 415, 422)
    @blp.doc(
        operationId="createWebhook",
        responses={
            201: {
                "links": links(
                    "getWebhook",
                    "updateWebhook",
                    "deleteWebhook",
                    "listWebhookDeliveries",
                    webhook_id="$response.body#/id",
                )
            }
        },
        description=(
            "The response carries the signing `secret`: store it, it is never shown again. "
            "The URL is refused (422) unless its host resolves only to public addresses; "
            "more than the allowed number of webhooks is a 409."
        ),
    )
    def post(self, values: dict[str, Any]) -> tuple[Any, dict[str, str]]:
        """Create a webhook."""
        created = service.create_webhook(
            db.session(), owner_id=current_principal().user_id, values=values
        )
        location = url_for(".WebhookItem", webhook_id=created.webhook.id)
        return created, {"Location": location}


@blp.route(WEBHOOK_ID)
class WebhookItem(MethodView):
    """One of your webhooks."""

    @blp.auth()
    @blp.response(200, schemas.Webhook)
    @blp.errors(404)
    @blp.doc(operationId="getWebhook")
    def get(self, webhook_id: uuid.UUID) -> Webhook:
        """Get a webhook."""
        return service.get_webhook(
            db.session(), owner_id=current_principal().user_id, webhook_id=webhook_id
        )

    @blp.auth()
    @blp.arguments(schemas.WebhookUpdate)
    @blp.response(200, schemas.Webhook)
    @blp.errors(400, 404, 415, 422)
    @blp.doc(
        operationId="updateWebhook",
        description=(
            "Change some fields. `is_active: false` pauses the endpoint (its pending deliveries "
            "fail); `is_active: true` re-enables it, also after the circuit breaker disabled it."
        ),
    )
    def patch(self, changes: dict[str, Any], webhook_id: uuid.UUID) -> Webhook:
        """Change a webhook."""
        return service.update_webhook(
            db.session(),
            owner_id=current_principal().user_id,
            webhook_id=webhook_id,
            changes=changes,
        )

    @blp.auth()
    @blp.response(204)
    @blp.errors(404)
    @blp.doc(operationId="deleteWebhook")
    def delete(self, webhook_id: uuid.UUID) -> None:
        """Delete a webhook and its delivery history."""
        service.delete_webhook(
            db.session(), owner_id=current_principal().user_id, webhook_id=webhook_id
        )


@blp.route(f"{WEBHOOK_ID}/deliveries", methods=["GET"])
@blp.auth()
@blp.arguments(schemas.DeliveryQueryArgs, location="query")
@blp.response(200, schemas.WebhookDeliveryPage)
@blp.errors(404, 422)
@blp.doc(
    operationId="listWebhookDeliveries",
    responses={
        200: {
            "links": links(
                "redeliverWebhookDelivery",
                webhook_id="$request.path.webhook_id",
                delivery_id="$response.body#/items/0/id",
            )
        }
    },
)
def list_deliveries(args: dict[str, Any], webhook_id: uuid.UUID) -> dict[str, Any]:
    """List a webhook's deliveries, newest first."""
    items, total = service.list_deliveries(
        db.session(), owner_id=current_principal().user_id, webhook_id=webhook_id, **args
    )
    return _page(items, total, args)


@blp.route(f"{WEBHOOK_ID}/deliveries/<uuid:delivery_id>/redeliver", methods=["POST"])
@blp.auth()
@blp.response(202, schemas.WebhookDelivery)
@blp.errors(404, 409)
@blp.doc(
    operationId="redeliverWebhookDelivery",
    description=(
        "Send the delivery again now, with a fresh attempt budget, whatever its state. "
        "A disabled webhook must be re-enabled first (409)."
    ),
)
def redeliver(webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> WebhookDelivery:
    """Replay a delivery."""
    return service.redeliver(
        db.session(),
        owner_id=current_principal().user_id,
        webhook_id=webhook_id,
        delivery_id=delivery_id,
    )
