"""The body and headers of a delivery, signed per the Standard Webhooks specification."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from standardwebhooks import Webhook


def message_body(*, event_name: str, occurred_at: datetime, payload: dict[str, Any]) -> str:
    """The JSON body: ``{"type", "timestamp", "data"}``, identical on every attempt."""
    return json.dumps(
        {"type": event_name, "timestamp": occurred_at.isoformat(), "data": payload},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def signature_headers(
    *, secret: str, message_id: str, sent_at: datetime, body: str
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for ``body``.

    ``sent_at`` is the time of this attempt (receivers refuse timestamps more than a few minutes
    old); ``message_id`` stays the same across retries so receivers can de-duplicate.
    """
    signature = Webhook(secret).sign(message_id, sent_at, body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(math.floor(sent_at.timestamp())),
        "webhook-signature": signature,
    }
