"""Request and response schemas of the webhooks API, named by direction."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from app.core.schemas import PageArgs, PatchSchema, StrictSchema, Text, page_schema
from app.events.service import EVENT_NAMES
from app.webhooks.models import DeliveryState
from app.webhooks.ssrf import MAX_URL_LENGTH

DESCRIPTION_MAX = 500
EVENT_TYPE_CHOICES = ("*", *sorted(EVENT_NAMES))
EXAMPLE_ID = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
EXAMPLE_TIME = "2030-01-31T17:00:00+00:00"


class EventTypes(ma.fields.List[str]):
    """A non-empty list of event names (or ``*``), de-duplicated in first-seen order."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            Text(validate=validate.OneOf(EVENT_TYPE_CHOICES)),
            validate=validate.Length(min=1, max=len(EVENT_TYPE_CHOICES)),
            metadata={
                "description": "Event names to receive, or `*` for all of them",
                "example": ["task.created", "task.completed"],
            },
            **kwargs,
        )

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> list[str | None]:
        names = super()._deserialize(value, attr, data, **kwargs)
        # The cap applies to the list as sent, as the document's maxItems says.
        for validator in self.validators:
            validator(names)
        return list(dict.fromkeys(names))


# http(s), a host without credentials, no spaces or control characters: the shape the SSRF
# guard checks before it resolves the host (which no pattern can say).
URL_PATTERN = (
    r"^[hH][tT][tT][pP][sS]?://[^\u0000-\u0020\u007f/?#@]+([/?#][^\u0000-\u0020\u007f]*)?$"
)


def _url(**kwargs: Any) -> Text:
    return Text(
        validate=validate.Length(min=1, max=MAX_URL_LENGTH),
        metadata={
            "pattern": URL_PATTERN,
            "description": (
                "Where deliveries are POSTed: http(s) (https only in production), an allowed port, "
                "no credentials, and a host whose every address is public"
            ),
            "example": "https://hooks.example.com/tasks",
        },
        **kwargs,
    )


def _description(**kwargs: Any) -> Text:
    return Text(
        allow_none=True,
        validate=validate.Length(max=DESCRIPTION_MAX),
        metadata={"description": "Free text; null for none", "example": "Sync to our CRM"},
        **kwargs,
    )


class WebhookCreate(StrictSchema):
    """Body of ``POST /webhooks``."""

    url = _url(required=True)
    event_types = EventTypes(required=True)
    description = _description()


class WebhookUpdate(PatchSchema):
    """Body of ``PATCH /webhooks/{webhook_id}``: only the fields given change."""

    url = _url()
    event_types = EventTypes()
    description = _description()
    is_active = ma.fields.Boolean(
        metadata={
            "description": "false pauses deliveries; true re-enables a disabled endpoint",
            "example": True,
        }
    )


class Webhook(ma.Schema):
    """A webhook endpoint as the API shows it (never its secret)."""

    id = ma.fields.UUID(required=True, metadata={"example": EXAMPLE_ID})
    url = ma.fields.String(required=True, metadata={"example": "https://hooks.example.com/tasks"})
    event_types = ma.fields.List(
        ma.fields.String(), required=True, metadata={"example": ["task.created"]}
    )
    description = ma.fields.String(allow_none=True, metadata={"example": "Sync to our CRM"})
    is_active = ma.fields.Boolean(required=True, metadata={"example": True})
    disabled_reason = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "Why deliveries stopped (the circuit breaker, or its owner)",
            "example": None,
        },
    )
    failing_since = ma.fields.AwareDateTime(
        allow_none=True,
        metadata={
            "description": "Start of the current streak of failed attempts; null after a success",
            "example": None,
        },
    )
    created_at = ma.fields.AwareDateTime(required=True, metadata={"example": EXAMPLE_TIME})
    updated_at = ma.fields.AwareDateTime(required=True, metadata={"example": EXAMPLE_TIME})


class WebhookCreated(Webhook):
    """A new webhook with its signing secret, shown in this response only."""

    secret = ma.fields.String(
        required=True,
        metadata={
            "description": (
                "Standard Webhooks signing secret; store it now, it is never shown again"
            ),
            "example": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        },
    )


class WebhookDelivery(ma.Schema):
    """One event sent (or being sent) to one endpoint."""

    id = ma.fields.UUID(
        required=True,
        metadata={
            "description": "Also the webhook-id header, stable across retries",
            "example": EXAMPLE_ID,
        },
    )
    event_id = ma.fields.UUID(required=True, metadata={"example": EXAMPLE_ID})
    event_name = ma.fields.String(required=True, metadata={"example": "task.created"})
    state = ma.fields.String(
        required=True,
        metadata={
            "description": (
                "`pending` (will be tried), `succeeded`, `failed` (a permanent error, not "
                "retried) or `dead` (every attempt failed)"
            ),
            "example": "pending",
        },
    )
    attempts = ma.fields.Integer(required=True, metadata={"example": 2})
    last_status_code = ma.fields.Integer(allow_none=True, metadata={"example": 503})
    last_error = ma.fields.String(allow_none=True, metadata={"example": "HTTP 503"})
    last_attempt_at = ma.fields.AwareDateTime(allow_none=True, metadata={"example": EXAMPLE_TIME})
    next_attempt_at = ma.fields.AwareDateTime(allow_none=True, metadata={"example": EXAMPLE_TIME})
    delays = ma.fields.List(
        ma.fields.Float(),
        required=True,
        metadata={"description": "Seconds waited before each retry", "example": [41.2, 97.5]},
    )
    created_at = ma.fields.AwareDateTime(required=True, metadata={"example": EXAMPLE_TIME})
    delivered_at = ma.fields.AwareDateTime(allow_none=True, metadata={"example": None})


class WebhookQueryArgs(PageArgs):
    """Query arguments of ``GET /webhooks``."""


class DeliveryQueryArgs(PageArgs):
    """Query arguments of ``GET /webhooks/{webhook_id}/deliveries``."""

    state = ma.fields.String(
        validate=validate.OneOf([state.value for state in DeliveryState]),
        metadata={"description": "Only deliveries in this state"},
    )


WebhookPage = page_schema(Webhook, "WebhookPage")
WebhookDeliveryPage = page_schema(WebhookDelivery, "WebhookDeliveryPage")
