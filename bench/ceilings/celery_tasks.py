"""Ceilings of the worker: a bare Celery app on the service's broker with the service's
reliability settings (late acks, prefetch 1, JSON), and two tasks.

    BENCH_BROKER_URL=redis://... BENCH_REDIS_KEY_PREFIX=bench-x: \
        celery -A bench.ceilings.celery_tasks worker --pool prefork -c 2 -Q ceiling

``ceiling.signed_post`` does what one webhook delivery does on the wire (a Standard Webhooks
signature over the body, a new HTTP connection, a POST, the response read) with no database,
no lease and no outcome recorded; ``ceiling.noop`` does nothing, so it measures Celery and the
broker alone.
"""

from __future__ import annotations

import http.client
import math
import os
from datetime import UTC, datetime
from urllib.parse import urlsplit

from celery import Celery
from kombu import Queue  # type: ignore[attr-defined]
from standardwebhooks import Webhook

QUEUE = "ceiling"
PREFIX = os.environ.get("BENCH_REDIS_KEY_PREFIX", "")

celery = Celery("ceiling")
celery.config_from_object(
    {
        "broker_url": os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"),
        "broker_transport_options": {"global_keyprefix": PREFIX} if PREFIX else {},
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_enable_remote_control": False,
        "worker_hijack_root_logger": False,
        "task_queues": [Queue(QUEUE)],  # type: ignore[no-untyped-call]
        "task_default_queue": QUEUE,
    }
)


@celery.task(name="ceiling.signed_post")
def signed_post(url: str, secret: str, message_id: str, body: str) -> int:
    """Sign ``body`` and POST it to ``url`` on a new connection; return the status."""
    sent_at = datetime.now(UTC)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(math.floor(sent_at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, sent_at, body),
    }
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("POST", parts.path, body=body.encode(), headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@celery.task(name="ceiling.noop")
def noop() -> None:
    """Nothing: Celery and the broker alone."""
