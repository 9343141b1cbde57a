"""End to end: the HTTP API, real Celery worker and beat processes on real Redis, and a real HTTP
receiver. Tasks created through the API reach the receiver, signed; retries, dead deliveries and
replays are visible in the API; a SIGKILLed worker and a stopped Redis lose nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook as StandardWebhook

from app.extensions import db
from app.webhooks.models import WebhookDelivery
from tests.support.live import wait_for
from tests.support.services import ManagedServer, start_redis
from tests.webhooks.live_api import call, create_task, sign_up, subscribe
from tests.webhooks.receiver import Receiver, always, failing_first

pytestmark = pytest.mark.slow

# Loopback receivers, millisecond backoff, short leases and sweeps: minutes of production
# behaviour in seconds.
LIVE_SETTINGS = {
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    "WEBHOOK_BACKOFF_BASE_SECONDS": "0.05",
    "WEBHOOK_BACKOFF_CAP_SECONDS": "1",
    "WEBHOOK_CONNECT_TIMEOUT_SECONDS": "1",
    "WEBHOOK_READ_TIMEOUT_SECONDS": "1",
    "WEBHOOK_LEASE_SECONDS": "1",
    "DELIVERY_SWEEP_INTERVAL_SECONDS": "0.5",
    "OUTBOX_SWEEP_INTERVAL_SECONDS": "0.5",
    "OUTBOX_SWEEP_GRACE_SECONDS": "0",
}


def deliveries_of(stack: Any, token: str, webhook_id: str, query: str = "") -> list[Any]:
    """The deliveries API's first page."""
    status, page = call(stack, "GET", f"/webhooks/{webhook_id}/deliveries{query}", token=token)
    assert status == 200
    return list(page["items"])


def rows(stack: Any) -> list[WebhookDelivery]:
    """Every delivery row, freshly read."""
    with stack.app.app_context():
        db.session.remove()
        return list(db.session().scalars(select(WebhookDelivery)).all())


def count_rows(stack: Any, state: str | None = None) -> int:
    with stack.app.app_context():
        db.session.remove()
        query = select(func.count()).select_from(WebhookDelivery)
        if state is not None:
            query = query.where(WebhookDelivery.state == state)
        return int(db.session().scalar(query) or 0)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    instance = Receiver().start()
    yield instance
    instance.stop()


def test_a_task_created_through_the_api_reaches_the_receiver_signed(
    make_live_stack: Any, receiver: Receiver
) -> None:
    stack = make_live_stack(**LIVE_SETTINGS)
    stack.start_worker()
    token = sign_up(stack)
    webhook = subscribe(stack, token, receiver.url)

    task_id = create_task(stack, token, "Write the report")

    [request] = wait_for(receiver.snapshot, 30, "the webhook")
    body = StandardWebhook(webhook["secret"]).verify(request.body, request.headers)
    assert body["type"] == "task.created"
    assert body["data"]["task_id"] == task_id
    assert body["data"]["task"]["title"] == "Write the report"
    [delivery] = wait_for(
        lambda: [
            d for d in deliveries_of(stack, token, webhook["id"]) if d["state"] == "succeeded"
        ],
        10,
        "the delivery recorded as succeeded",
    )
    assert delivery["id"] == request.headers["webhook-id"]
    assert (delivery["attempts"], delivery["last_status_code"]) == (1, 200)


def test_three_failures_then_success_with_growing_backoff(
    make_live_stack: Any, receiver: Receiver
) -> None:
    receiver.responder = failing_first(3, status=500)
    stack = make_live_stack(**LIVE_SETTINGS)
    stack.start_worker()
    token = sign_up(stack)
    webhook = subscribe(stack, token, receiver.url)
    create_task(stack, token, "Flaky endpoint")

    [delivery] = wait_for(
        lambda: deliveries_of(stack, token, webhook["id"], "?state=succeeded"),
        30,
        "delivery on the 4th attempt",
    )
    assert delivery["attempts"] == 4
    assert delivery["last_status_code"] == 200
    delays = delivery["delays"]
    ceilings = [0.05, 0.1, 0.2]  # base 0.05 s, doubling: full jitter draws below each
    assert len(delays) == 3
    assert all(0.025 <= delay <= ceiling for delay, ceiling in zip(delays, ceilings, strict=True))
    requests = receiver.snapshot()
    assert len(requests) == 4
    assert {r.headers["webhook-id"] for r in requests} == {delivery["id"]}
    for request in requests:
        StandardWebhook(webhook["secret"]).verify(request.body, request.headers)


def test_an_endpoint_that_always_fails_is_dead_then_replayed_once_fixed(
    make_live_stack: Any, receiver: Receiver
) -> None:
    receiver.responder = always(500)
    stack = make_live_stack(WEBHOOK_MAX_ATTEMPTS="4", **LIVE_SETTINGS)
    worker = stack.start_worker()
    token = sign_up(stack)
    webhook = subscribe(stack, token, receiver.url)
    create_task(stack, token, "Doomed")

    [dead] = wait_for(
        lambda: deliveries_of(stack, token, webhook["id"], "?state=dead"), 30, "a dead delivery"
    )
    assert (dead["attempts"], dead["last_status_code"], dead["last_error"]) == (4, 500, "HTTP 500")
    assert len(dead["delays"]) == 3
    assert dead["next_attempt_at"] is None
    assert receiver.count() == 4
    log_line = wait_for(
        lambda: [line for line in worker.log().splitlines() if "webhook delivery dead" in line],
        10,
        "the dead delivery in the worker log",
    )[0]
    assert '"level": "error"' in log_line
    assert dead["id"] in log_line

    receiver.responder = always(204)
    status, replayed = call(
        stack, "POST", f"/webhooks/{webhook['id']}/deliveries/{dead['id']}/redeliver", token=token
    )
    assert status == 202
    assert replayed["state"] == "pending"
    [done] = wait_for(
        lambda: deliveries_of(stack, token, webhook["id"], "?state=succeeded"), 30, "the replay"
    )
    assert (done["id"], done["attempts"], done["last_status_code"]) == (dead["id"], 1, 204)
    assert receiver.count() == 5


def test_a_sigkilled_worker_loses_no_delivery(make_live_stack: Any, receiver: Receiver) -> None:
    events_sent = 30
    receiver.delay = 0.2  # a slow endpoint, so the kill lands in the middle of deliveries
    stack = make_live_stack(**LIVE_SETTINGS)
    # Deliveries run on their own worker (the notifications queue), as in production; that is
    # the one killed. The events worker keeps fanning out.
    stack.start_worker(queues="events", name="events-worker")
    delivery_worker = stack.start_worker(queues="notifications", name="delivery-worker")
    token = sign_up(stack)
    subscribe(stack, token, receiver.url)
    for number in range(events_sent):
        create_task(stack, token, f"Task {number}")

    wait_for(lambda: len(receiver.ids()) >= 5, 30, "the first deliveries")
    delivery_worker.kill()  # SIGKILL, mid-delivery: its in-flight and reserved work is orphaned
    delivered_before_kill = len(receiver.ids())
    assert delivered_before_kill < events_sent, "the kill came too late to prove anything"
    wait_for(lambda: count_rows(stack) == events_sent, 30, "every event fanned out")

    stack.start_worker(queues="notifications", name="replacement")
    stack.start_beat()  # its sweep re-enqueues the orphaned deliveries once their lease expires
    wait_for(lambda: count_rows(stack, "succeeded") == events_sent, 90, "every delivery succeeded")
    received = receiver.snapshot()
    distinct = {request.headers["webhook-id"] for request in received}
    assert distinct == {str(row.id) for row in rows(stack)}
    assert len(distinct) == events_sent
    duplicates = len(received) - len(distinct)
    assert duplicates <= 2  # at most the attempts in flight in the killed worker's 2 processes
    print(
        f"\nSIGKILL: events sent={events_sent} delivered={len(distinct)} "
        f"duplicates={duplicates} (received before kill: {delivered_before_kill})"
    )


def test_api_writes_succeed_while_redis_is_down_and_every_event_is_delivered_after(
    make_live_stack: Any, receiver: Receiver, throwaway_redis: list[ManagedServer]
) -> None:
    events_sent = 10
    redis_server = start_redis()
    throwaway_redis.append(redis_server)
    port = int(redis_server.url.rsplit(":", 1)[1].split("/")[0])
    stack = make_live_stack(
        CELERY_BROKER_URL=redis_server.url, REDIS_URL=redis_server.url, **LIVE_SETTINGS
    )
    worker = stack.start_worker()
    beat = stack.start_beat()
    token = sign_up(stack)
    webhook = subscribe(stack, token, receiver.url)

    redis_server.stop()
    statuses = []
    for number in range(events_sent):
        status, _ = call(stack, "POST", "/tasks", {"title": f"Offline {number}"}, token)
        statuses.append(status)
    assert statuses == [201] * events_sent  # every write answered 2xx with the broker down
    assert receiver.count() == 0

    throwaway_redis.append(start_redis(port))  # back, empty, on the same port
    # Do what a process supervisor (systemd, Kubernetes) does: replace a process that exited.
    # Celery 5.7 / kombu 5.7 exit on losing Redis while holding an unacknowledged message
    # (AttributeError in restore_unacked); whatever it held is redone from the database.
    running = {"worker": worker, "beat": beat}
    restarted: list[str] = []

    def supervised_delivery_count() -> bool:
        for role, process in list(running.items()):
            if process.popen.poll() is not None:
                restarted.append(role)
                running[role] = stack.start_worker() if role == "worker" else stack.start_beat()
        return len(receiver.ids()) == events_sent

    wait_for(supervised_delivery_count, 90, "every event delivered")
    wait_for(lambda: count_rows(stack, "succeeded") == events_sent, 30, "every delivery succeeded")
    received = receiver.snapshot()
    for request in received:
        StandardWebhook(webhook["secret"]).verify(request.body, request.headers)
    duplicates = len(received) - len(receiver.ids())
    print(
        f"\nRedis down: events sent={events_sent} delivered={len(receiver.ids())} "
        f"duplicates={duplicates} restarted after the outage: {restarted or 'nothing'}"
    )
