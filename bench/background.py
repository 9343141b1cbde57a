"""Background work: event-to-webhook latency at a steady rate, and deliveries per second of one
worker next to two bare Celery ceilings on the same broker.

The receiver is an HTTP server in this process on loopback; it notes when each delivery
arrives. Times on either side are ``time.time()`` of one machine, so they compare directly,
and also with the timestamps the service writes in PostgreSQL (for the hop breakdown).
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import sqlalchemy as sa

from bench.stack import Stack

DELIVER_QUEUE = "notifications"
EVENTS_QUEUE = "events"


class Receiver:
    """A loopback HTTP server recording the arrival time of every POST, by a key of its body."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.lock = threading.Lock()
        self.condition = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrived = time.time()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                key = receiver.key_of(body, self.headers.get("webhook-id", ""))
                with receiver.condition:
                    receiver.arrivals.setdefault(key, arrived)
                    receiver.condition.notify_all()

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 1024
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def key_of(body: bytes, webhook_id: str) -> str:
        """The task id of a service delivery, else the message id (the ceiling's POSTs)."""
        try:
            data = json.loads(body).get("data") or {}
            if "task_id" in data:
                return f"task:{data['task_id']}"
        except (ValueError, AttributeError):
            pass
        return f"id:{webhook_id}"

    def url(self, path: str = "/hook") -> str:
        """The URL deliveries are sent to."""
        return f"http://127.0.0.1:{self.port}{path}"

    def reset(self) -> None:
        """Forget every arrival."""
        with self.condition:
            self.arrivals.clear()

    def wait_for(self, count: int, timeout: float) -> int:
        """Wait until ``count`` arrivals (or ``timeout``); return how many arrived."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while len(self.arrivals) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.condition.wait(left)
            return len(self.arrivals)

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


@dataclass
class LatencyResult:
    """Event-to-webhook latency at a steady rate."""

    rate: float
    events: int
    arrived: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    hops_ms: dict[str, tuple[float, float]] = field(default_factory=dict)


def create_task(connection: http.client.HTTPConnection, token: str, title: str) -> int:
    """POST one task on a kept-alive connection; return its id."""
    body = json.dumps({"title": title, "tags": ["bench"]})
    connection.request(
        "POST",
        "/api/v1/tasks",
        body=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    response = connection.getresponse()
    data = response.read()
    if response.status != 201:
        raise RuntimeError(f"POST /api/v1/tasks: {response.status} {data[:300]!r}")
    return int(json.loads(data)["id"])


def event_to_webhook(
    stack: Stack,
    port: int,
    token: str,
    receiver: Receiver,
    *,
    rate: float,
    seconds: float,
) -> LatencyResult:
    """POST tasks at ``rate`` per second for ``seconds``; time each one from the response to
    its webhook arriving (open loop: a late send does not delay the schedule)."""
    receiver.reset()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    returned: dict[str, float] = {}
    total = int(rate * seconds)
    started = time.monotonic()
    for number in range(total):
        delay = started + number / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        task_id = create_task(connection, token, f"Latency {number}")
        returned[f"task:{task_id}"] = time.time()
    connection.close()
    arrived = receiver.wait_for(total, timeout=60)
    with receiver.lock:
        arrivals = dict(receiver.arrivals)
    latencies = [(arrivals[key] - sent) * 1000 for key, sent in returned.items() if key in arrivals]
    return LatencyResult(
        rate=rate,
        events=total,
        arrived=arrived,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        max_ms=max(latencies, default=float("nan")),
        hops_ms=hop_breakdown(stack, returned, arrivals),
    )


HOPS_QUERY = """
SELECT (e.payload ->> 'task_id')::bigint AS task_id,
       extract(epoch FROM e.created_at) AS created,
       extract(epoch FROM e.published_at) AS published,
       extract(epoch FROM e.dispatched_at) AS dispatched,
       extract(epoch FROM d.created_at) AS delivery_created,
       extract(epoch FROM d.last_attempt_at) AS attempted
FROM outbox_events e JOIN webhook_deliveries d ON d.event_id = e.id
WHERE e.name = 'task.created'
"""


def hop_breakdown(
    stack: Stack, returned: dict[str, float], arrivals: dict[str, float]
) -> dict[str, tuple[float, float]]:
    """Median and p99 of each hop, from the service's own timestamps in PostgreSQL."""
    hops: dict[str, list[float]] = {}
    with stack.engine().connect() as connection:
        rows = connection.execute(sa.text(HOPS_QUERY)).mappings().all()
    for row in rows:
        key = f"task:{row['task_id']}"
        if key not in returned or key not in arrivals or row["attempted"] is None:
            continue
        published, created = float(row["published"]), float(row["delivery_created"])
        points = [
            (
                "commit -> response (event created_at to POST returning)",
                float(row["created"]),
                returned[key],
            ),
            ("response -> published (kick)", returned[key], published),
            ("published -> delivery row (events.dispatch, fan-out)", published, created),
            (
                "delivery row -> arrival (first attempt in the dispatching worker: claim, POST)",
                created,
                arrivals[key],
            ),
            ("arrival -> outcome recorded", arrivals[key], float(row["attempted"])),
        ]
        for name, start, end in points:
            if start and end:
                hops.setdefault(name, []).append((end - start) * 1000)
    return {
        name: (statistics.median(values), percentile(values, 0.99)) for name, values in hops.items()
    }


def queue_length(stack: Stack, queue: str) -> int:
    """Messages waiting in ``queue`` (the benchmark's prefix)."""
    client = stack.redis()
    try:
        return int(client.llen(f"{stack.key_prefix}{queue}"))
    finally:
        client.close()


def unacked(stack: Stack) -> int:
    """Messages delivered to a worker and not yet acknowledged."""
    client = stack.redis()
    try:
        return int(client.hlen(f"{stack.key_prefix}unacked"))
    finally:
        client.close()


def rate_of(times: list[float]) -> float:
    """Arrivals per second between the first and the last arrival."""
    ordered = sorted(times)
    if len(ordered) < 2 or ordered[-1] == ordered[0]:
        return float("nan")
    return (len(ordered) - 1) / (ordered[-1] - ordered[0])


def drain_rate(stack: Stack, queue: str, count: int, timeout: float) -> float:
    """Messages per second a worker (already started) takes to empty ``queue`` of ``count``
    messages, from the first one taken to the last one acknowledged."""
    first = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = queue_length(stack, queue)
        now = time.monotonic()
        if first is None and waiting < count:
            first = now
        if waiting == 0 and unacked(stack) == 0 and first is not None:
            return (count - 1) / (now - first) if now > first else float("nan")
        time.sleep(0.002)
    raise RuntimeError(f"queue {queue} not drained within {timeout:.0f}s")


def new_message_id() -> str:
    """A message id for a ceiling POST."""
    return f"msg_{uuid.uuid4().hex}"


QUEUED_DELIVERIES = """
INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_name, payload, event_created_at,
                                state, attempts, delays, next_attempt_at, queued_until,
                                created_at, updated_at)
SELECT gen_random_uuid(), w.id, gen_random_uuid(), 'task.created',
       jsonb_build_object('task_id', -g, 'owner_id', w.owner_id, 'title', 'Throughput ' || g),
       now(), 'pending', 0, '[]'::jsonb, now(), now() + interval '1 hour', now(), now()
FROM generate_series(1, :count) AS g, webhooks w
WHERE w.id = :webhook_id
RETURNING id
"""


def queue_deliveries(stack: Stack, webhook_id: str, count: int) -> None:
    """``count`` due deliveries to one endpoint, each with its ``webhooks.deliver`` message in
    the notifications queue: what a fan-out leaves for the delivery workers.

    The service's fan-out makes an event's first attempt in the dispatching worker itself (one
    task fewer per event; measured by the event-to-webhook runs), so it no longer leaves a
    queue to drain. This queue is what retries, failing endpoints and the further endpoints of
    an event go through, and what the deliveries-per-second figure measures.
    """
    from celery import Celery

    with stack.engine().begin() as connection:
        ids = [
            str(row[0])
            for row in connection.execute(
                sa.text(QUEUED_DELIVERIES), {"count": count, "webhook_id": webhook_id}
            )
        ]
    producer = Celery("bench-producer", broker=stack.redis_url)
    producer.conf.broker_transport_options = {"global_keyprefix": stack.key_prefix}
    producer.conf.task_serializer = "json"
    with producer.producer_or_acquire() as publisher:
        for delivery_id in ids:
            producer.send_task(
                "webhooks.deliver", args=[delivery_id], queue=DELIVER_QUEUE, producer=publisher
            )
    producer.close()
