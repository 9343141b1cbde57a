"""Deliveries in-process against a real loopback receiver: fan-out, leases, retries with backoff,
permanent failures, the circuit breaker, the sweep and the purge."""

from __future__ import annotations

import json
import logging
import random
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from standardwebhooks import Webhook as StandardWebhook

from app.config import current_settings
from app.core.database import utcnow
from app.events import background as events_background
from app.events import service as events
from app.events.background import run_consumer
from app.events.models import ConsumedEvent, OutboxEvent
from app.events.registry import consumers_for
from app.users.models import User
from app.webhooks import background, deliveries, service
from app.webhooks.models import Webhook, WebhookDelivery
from app.webhooks.sender import Outcome, OutcomeKind
from tests.webhooks.conftest import PUBLIC_HOST, Override
from tests.webhooks.receiver import Receiver, always, failing_first, running

pytestmark = pytest.mark.usefixtures("loopback_allowed")


class HighestDraw(random.Random):
    """Full jitter that always draws the ceiling, so the schedule itself is visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...], Any]]:
    """Tasks the code under test enqueued (name, args, countdown), instead of a broker."""
    messages: list[tuple[str, tuple[Any, ...], Any]] = []

    def send_task(name: str, args: Any = (), *, countdown: Any = None, **_kw: Any) -> None:
        messages.append((name, tuple(args), countdown))

    monkeypatch.setattr(background, "send_task", send_task)
    monkeypatch.setattr(deliveries, "send_task", send_task)
    return messages


def make_webhook(
    session: Session, owner: User, url: str, event_types: list[str] | None = None
) -> tuple[Webhook, str]:
    """An endpoint of ``owner``, and its secret."""
    created = service.create_webhook(
        session, owner_id=owner.id, values={"url": url, "event_types": event_types or ["*"]}
    )
    return created.webhook, created.secret


def emit(session: Session, owner: User, name: str = events.TASK_CREATED) -> OutboxEvent:
    """Record an event of ``owner`` and run the fan-out consumer on it (committed)."""
    event = events.record(session, name, {"task_id": 42, "owner_id": owner.id, "title": "Ship"})
    session.commit()
    [fan_out] = [c for c in consumers_for(name) if c.name == "webhooks.fan_out"]
    run_consumer(session, fan_out, event)
    return event


def only_delivery(session: Session, webhook: Webhook) -> WebhookDelivery:
    """The single delivery of ``webhook``, freshly read."""
    session.expire_all()
    return session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
    ).one()


def pending_delivery(session: Session, owner: User) -> tuple[Webhook, WebhookDelivery]:
    """An endpoint of ``owner`` that is never called (port 9) and the delivery one event made."""
    webhook, _ = make_webhook(session, owner, "http://127.0.0.1:9/a")
    emit(session, owner)
    return webhook, only_delivery(session, webhook)


def make_due(session: Session, delivery: WebhookDelivery) -> None:
    """Let the retry delay pass (no sleeping)."""
    delivery.next_attempt_at = utcnow() - timedelta(milliseconds=1)
    session.commit()


def test_fan_out_reaches_the_owners_subscribed_active_endpoints(
    db_session: Session, user: User, other_user: User
) -> None:
    everything, _ = make_webhook(db_session, user, "http://127.0.0.1:9/a", ["*"])
    created_only, _ = make_webhook(db_session, user, "http://127.0.0.1:9/b", ["task.created"])
    deleted_only, _ = make_webhook(db_session, user, "http://127.0.0.1:9/c", ["task.deleted"])
    paused, _ = make_webhook(db_session, user, "http://127.0.0.1:9/d", ["*"])
    paused.is_active = False
    strangers, _ = make_webhook(db_session, other_user, "http://127.0.0.1:9/e", ["*"])
    db_session.commit()

    event = events.record(db_session, events.TASK_CREATED, {"task_id": 1, "owner_id": user.id})
    db_session.flush()
    follow_ups = background.fan_out(db_session, event)
    db_session.commit()

    rows = db_session.scalars(select(WebhookDelivery)).all()
    assert {row.webhook_id for row in rows} == {everything.id, created_only.id}
    assert sorted(f.args[0] for f in follow_ups) == sorted(str(row.id) for row in rows)
    assert {f.task_name for f in follow_ups} == {"webhooks.deliver"}
    assert all(row.state == "pending" and row.event_id == event.id for row in rows)
    assert deleted_only.id not in {row.webhook_id for row in rows}
    assert strangers.id not in {row.webhook_id for row in rows}


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Tasks events.dispatch enqueued (names), instead of a broker."""
    names: list[str] = []

    def send_task(name: str, *_args: Any, **_kw: Any) -> None:
        names.append(name)

    monkeypatch.setattr(events_background, "send_task", send_task)
    return names


def record_event(session: Session, owner: User) -> OutboxEvent:
    """A committed task.created event of ``owner``."""
    event = events.record(session, events.TASK_CREATED, {"task_id": 7, "owner_id": owner.id})
    session.commit()
    return event


def test_the_dispatching_worker_makes_the_first_attempt_itself(
    db_session: Session, user: User, receiver: Receiver, dispatched: list[str]
) -> None:
    webhook, secret = make_webhook(db_session, user, receiver.url)
    event = record_event(db_session, user)

    assert events_background.dispatch.run(str(event.id)) == 1  # in this test's app

    # Arrived before the dispatch returned, signed, and recorded: no webhooks.deliver message.
    [request] = receiver.snapshot()
    StandardWebhook(secret).verify(request.body, request.headers)
    delivery = only_delivery(db_session, webhook)
    assert request.headers["webhook-id"] == str(delivery.id)
    assert (delivery.state, delivery.attempts) == ("succeeded", 1)
    assert dispatched == []
    assert db_session.get(OutboxEvent, event.id, populate_existing=True).dispatched_at is not None


def test_a_failing_endpoint_and_further_endpoints_go_through_the_queue(
    db_session: Session, user: User, receiver: Receiver, dispatched: list[str]
) -> None:
    failing, _ = make_webhook(db_session, user, receiver.url + "?failing")
    failing.failing_since = utcnow()
    make_webhook(db_session, user, receiver.url + "?first")
    make_webhook(db_session, user, receiver.url + "?second")
    db_session.commit()
    event = record_event(db_session, user)

    assert events_background.dispatch.run(str(event.id)) == 1  # in this test's app

    # One healthy endpoint is attempted here; the other and the failing one are enqueued.
    [request] = receiver.snapshot()
    assert request.path.endswith(("?first", "?second"))
    assert dispatched == ["webhooks.deliver", "webhooks.deliver"]


def test_events_without_an_owner_fan_out_to_nobody(db_session: Session, user: User) -> None:
    make_webhook(db_session, user, "http://127.0.0.1:9/a", ["*"])
    event = events.record(db_session, events.TASK_CREATED, {"task_id": 1})
    db_session.flush()
    assert background.fan_out(db_session, event) == []


def test_a_redelivered_event_creates_no_second_delivery(db_session: Session, user: User) -> None:
    make_webhook(db_session, user, "http://127.0.0.1:9/a")
    event = emit(db_session, user)
    [fan_out] = [c for c in consumers_for(event.name) if c.name == "webhooks.fan_out"]
    assert run_consumer(db_session, fan_out, event) == []  # the consumed marker
    assert db_session.get(ConsumedEvent, (event.id, "webhooks.fan_out")) is not None
    assert len(db_session.scalars(select(WebhookDelivery)).all()) == 1
    # Even without the marker, the unique (webhook, event) pair refuses a second row.
    with pytest.raises(IntegrityError):
        deliveries.create_deliveries(db_session, event=event)
    db_session.rollback()


def test_a_delivery_is_signed_and_succeeds(
    db_session: Session, user: User, receiver: Receiver
) -> None:
    webhook, secret = make_webhook(db_session, user, receiver.url)
    event = emit(db_session, user)
    delivery = only_delivery(db_session, webhook)

    assert background.attempt_delivery(delivery.id) == "success"

    [request] = receiver.snapshot()
    body = StandardWebhook(secret).verify(request.body, request.headers)
    assert body == {
        "type": "task.created",
        "timestamp": event.created_at.isoformat(),
        "data": {"task_id": 42, "owner_id": user.id, "title": "Ship"},
    }
    assert request.headers["webhook-id"] == str(delivery.id)
    assert request.headers["content-type"] == "application/json"
    assert "webhooks" in request.headers["user-agent"]
    delivery = only_delivery(db_session, webhook)
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert delivery.delivered_at is not None
    assert delivery.next_attempt_at is None
    assert delivery.lease_until is None
    # A duplicate message finds nothing to do: the endpoint is not called twice.
    assert background.attempt_delivery(delivery.id) == "not due or claimed elsewhere"
    assert receiver.count() == 1


def test_a_claimed_delivery_is_leased_and_a_stale_outcome_is_ignored(
    db_session: Session, user: User
) -> None:
    webhook, delivery = pending_delivery(db_session, user)
    now = utcnow()

    first = deliveries.claim_delivery(db_session, delivery_id=delivery.id, now=now)
    assert first is not None
    assert deliveries.claim_delivery(db_session, delivery_id=delivery.id, now=now) is None
    later = now + timedelta(seconds=deliveries.lease_seconds(current_settings()) + 1)
    second = deliveries.claim_delivery(db_session, delivery_id=delivery.id, now=later)
    assert second is not None  # the first worker died: its lease expired

    stale = Outcome(OutcomeKind.SUCCESS, 200)
    assert deliveries.record_outcome(db_session, attempt=first, outcome=stale) is None
    assert only_delivery(db_session, webhook).state == "pending"
    deliveries.record_outcome(db_session, attempt=second, outcome=stale)
    assert only_delivery(db_session, webhook).state == "succeeded"


def synchronous_commit(session: Session) -> str:
    """This transaction's ``synchronous_commit`` setting."""
    return str(session.execute(text("SHOW synchronous_commit")).scalar_one())


def test_the_claim_commits_without_waiting_for_the_disk(db_session: Session, user: User) -> None:
    make_webhook(db_session, user, "http://127.0.0.1:9/a")
    event = events.record(db_session, events.TASK_CREATED, {"task_id": 1, "owner_id": user.id})
    db_session.flush()
    [delivery_id] = deliveries.create_deliveries(db_session, event=event)
    db_session.commit()
    assert synchronous_commit(db_session) == "on"

    assert deliveries.claim_delivery(db_session, delivery_id=delivery_id) is not None

    # A lost lease only allows one more attempt: its statement relaxes its own commit.
    assert synchronous_commit(db_session) == "off"


def test_the_consumed_marker_commits_without_waiting_for_the_disk(
    db_session: Session, user: User
) -> None:
    event = events.record(db_session, events.TASK_CREATED, {"task_id": 1, "owner_id": user.id})
    db_session.flush()
    assert synchronous_commit(db_session) == "on"
    [fan_out] = [c for c in consumers_for(event.name) if c.name == "webhooks.fan_out"]

    run_consumer(db_session, fan_out, event)

    # Lost in a crash, the marker goes with its effect and the event is dispatched again.
    assert synchronous_commit(db_session) == "off"


def test_three_failures_then_success_on_the_fourth_attempt(
    db_session: Session,
    user: User,
    receiver: Receiver,
    sent: list[tuple[str, tuple[Any, ...], Any]],
) -> None:
    receiver.responder = failing_first(3, status=503)
    webhook, secret = make_webhook(db_session, user, receiver.url)
    emit(db_session, user)
    delivery = only_delivery(db_session, webhook)

    outcomes = []
    for _ in range(4):
        outcomes.append(background.attempt_delivery(delivery.id))
        delivery = only_delivery(db_session, webhook)
        if delivery.state == "pending":
            make_due(db_session, delivery)

    assert outcomes == ["transient", "transient", "transient", "success"]
    delivery = only_delivery(db_session, webhook)
    assert (delivery.state, delivery.attempts) == ("succeeded", 4)
    ceilings = [0.05, 0.1, 0.2]
    assert len(delivery.delays) == 3
    assert all(
        0 < delay <= ceiling for delay, ceiling in zip(delivery.delays, ceilings, strict=True)
    )
    # Each retry was enqueued with its delay as the countdown (short enough for the broker).
    assert [countdown for _, _, countdown in sent] == pytest.approx(delivery.delays, abs=1e-3)
    requests = receiver.snapshot()
    assert {request.headers["webhook-id"] for request in requests} == {str(delivery.id)}
    for request in requests:
        StandardWebhook(secret).verify(request.body, request.headers)


def test_the_backoff_ceilings_double_up_to_the_cap_then_the_delivery_is_dead(
    db_session: Session, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    webhook, delivery = pending_delivery(db_session, user)
    failure = Outcome(OutcomeKind.TRANSIENT, 500, "HTTP 500")
    countdowns = []
    with caplog.at_level(logging.ERROR, logger="app.webhooks.deliveries"):
        for _ in range(8):
            attempt = deliveries.claim_delivery(db_session, delivery_id=delivery.id, now=utcnow())
            assert attempt is not None
            countdowns.append(
                deliveries.record_outcome(
                    db_session, attempt=attempt, outcome=failure, rng=HighestDraw()
                )
            )
            if only_delivery(db_session, webhook).state == "pending":
                make_due(db_session, only_delivery(db_session, webhook))

    delivery = only_delivery(db_session, webhook)
    assert delivery.delays == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]  # doubling, capped at 1 s
    assert countdowns == [*delivery.delays, None]
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("dead", 8, None)
    [record] = [r for r in caplog.records if "dead" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.delivery_id == str(delivery.id)  # type: ignore[attr-defined]
    assert record.webhook_id == str(webhook.id)  # type: ignore[attr-defined]


def test_seeded_jitter_stays_under_each_ceiling(db_session: Session, user: User) -> None:
    webhook, delivery = pending_delivery(db_session, user)
    rng = random.Random(1234)
    for _ in range(5):
        attempt = deliveries.claim_delivery(db_session, delivery_id=delivery.id)
        assert attempt is not None
        deliveries.record_outcome(
            db_session, attempt=attempt, outcome=Outcome(OutcomeKind.TRANSIENT), rng=rng
        )
        make_due(db_session, only_delivery(db_session, webhook))
    delays = only_delivery(db_session, webhook).delays
    ceilings = [0.05, 0.1, 0.2, 0.4, 0.8]
    assert all(0.025 <= d <= c for d, c in zip(delays, ceilings, strict=True))


def test_a_long_retry_is_left_to_the_sweep_not_to_a_countdown(
    db_session: Session, user: User, override_settings: Override
) -> None:
    override_settings(WEBHOOK_BACKOFF_BASE_SECONDS=600.0, WEBHOOK_BACKOFF_CAP_SECONDS=3600.0)
    webhook, delivery = pending_delivery(db_session, user)
    attempt = deliveries.claim_delivery(db_session, delivery_id=delivery.id)
    assert attempt is not None
    countdown = deliveries.record_outcome(
        db_session, attempt=attempt, outcome=Outcome(OutcomeKind.TRANSIENT), rng=HighestDraw()
    )
    assert countdown is None  # 600 s > CELERY_MAX_COUNTDOWN_SECONDS
    delivery = only_delivery(db_session, webhook)
    assert delivery.queued_until is None
    assert delivery.next_attempt_at is not None
    assert deliveries.enqueue_due(db_session) == []
    assert deliveries.enqueue_due(db_session, now=delivery.next_attempt_at) == [delivery.id]


def test_429_retry_after_is_honoured_and_capped(
    db_session: Session,
    user: User,
    receiver: Receiver,
    sent: list[tuple[str, tuple[Any, ...], Any]],
) -> None:
    receiver.responder = always(429, {"Retry-After": "1"})
    webhook, _ = make_webhook(db_session, user, receiver.url)
    emit(db_session, user)
    delivery = only_delivery(db_session, webhook)
    assert background.attempt_delivery(delivery.id) == "transient"
    delivery = only_delivery(db_session, webhook)
    assert delivery.delays == [1.0]
    assert delivery.last_status_code == 429
    assert delivery.next_attempt_at is not None
    assert delivery.last_attempt_at is not None
    waited = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert waited == pytest.approx(1.0, abs=1e-3)
    assert sent[-1] == ("webhooks.deliver", (str(delivery.id),), 1.0)

    receiver.responder = always(429, {"Retry-After": "86400"})
    make_due(db_session, delivery)
    background.attempt_delivery(delivery.id)
    assert only_delivery(db_session, webhook).delays == [1.0, 1.0]  # a day, capped at 1 s


def test_404_fails_at_once_without_retry(
    db_session: Session,
    user: User,
    receiver: Receiver,
    sent: list[tuple[str, tuple[Any, ...], Any]],
) -> None:
    receiver.responder = always(404)
    webhook, _ = make_webhook(db_session, user, receiver.url)
    emit(db_session, user)
    delivery = only_delivery(db_session, webhook)
    assert background.attempt_delivery(delivery.id) == "permanent"
    delivery = only_delivery(db_session, webhook)
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("failed", 1, 404)
    assert (delivery.last_error, delivery.delays, delivery.next_attempt_at) == (
        "HTTP 404",
        [],
        None,
    )
    assert sent == []
    assert deliveries.enqueue_due(db_session) == []
    assert background.attempt_delivery(delivery.id) == "not due or claimed elsewhere"
    assert receiver.count() == 1


def test_a_redirect_to_an_internal_address_fails_and_is_not_followed(
    db_session: Session, user: User, receiver: Receiver
) -> None:
    with running(Receiver()) as internal:
        receiver.responder = always(302, {"Location": f"http://127.0.0.1:{internal.port}/admin"})
        webhook, _ = make_webhook(db_session, user, receiver.url)
        emit(db_session, user)
        background.attempt_delivery(only_delivery(db_session, webhook).id)
        assert internal.count() == 0
    delivery = only_delivery(db_session, webhook)
    assert (delivery.state, delivery.last_status_code) == ("failed", 302)
    assert delivery.last_error == "HTTP 302: redirects are not followed"


def test_the_guard_runs_again_at_delivery_time(
    db_session: Session,
    user: User,
    override_settings: Override,
    fake_dns: dict[str, list[str]],
) -> None:
    override_settings(WEBHOOK_ALLOW_PRIVATE_TARGETS=False)
    webhook, _ = make_webhook(db_session, user, f"https://{PUBLIC_HOST}/hook")
    emit(db_session, user)
    fake_dns[PUBLIC_HOST] = ["169.254.169.254"]  # DNS changed after the webhook was created
    delivery = only_delivery(db_session, webhook)
    assert background.attempt_delivery(delivery.id) == "permanent"
    delivery = only_delivery(db_session, webhook)
    assert delivery.state == "failed"
    assert delivery.last_status_code is None
    assert delivery.last_error is not None
    assert delivery.last_error.startswith("URL refused:")
    assert "cloud metadata" in delivery.last_error


def test_always_failing_is_dead_then_a_replay_succeeds(
    db_session: Session,
    user: User,
    receiver: Receiver,
    override_settings: Override,
    sent: list[tuple[str, tuple[Any, ...], Any]],
) -> None:
    override_settings(WEBHOOK_MAX_ATTEMPTS=3)
    receiver.responder = always(500)
    webhook, _ = make_webhook(db_session, user, receiver.url)
    emit(db_session, user)
    delivery = only_delivery(db_session, webhook)
    for _ in range(3):
        background.attempt_delivery(delivery.id)
        make_due(db_session, only_delivery(db_session, webhook))
    delivery = only_delivery(db_session, webhook)
    assert (delivery.state, delivery.attempts, len(delivery.delays)) == ("dead", 3, 2)

    receiver.responder = always(200)
    service.redeliver(db_session, owner_id=user.id, webhook_id=webhook.id, delivery_id=delivery.id)
    assert sent[-1] == ("webhooks.deliver", (str(delivery.id),), None)
    assert background.attempt_delivery(delivery.id) == "success"
    delivery = only_delivery(db_session, webhook)
    assert (delivery.state, delivery.attempts, delivery.delays) == ("succeeded", 1, [])
    assert receiver.count() == 4


def test_a_replay_during_an_attempt_wins_over_its_late_outcome(
    db_session: Session, user: User
) -> None:
    webhook, delivery = pending_delivery(db_session, user)
    attempt = deliveries.claim_delivery(db_session, delivery_id=delivery.id)
    assert attempt is not None
    service.redeliver(db_session, owner_id=user.id, webhook_id=webhook.id, delivery_id=delivery.id)
    failure = Outcome(OutcomeKind.PERMANENT, 410, "HTTP 410")
    assert deliveries.record_outcome(db_session, attempt=attempt, outcome=failure) is None
    delivery = only_delivery(db_session, webhook)
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("pending", 0, None)


def test_an_unreadable_secret_fails_the_delivery(
    db_session: Session, user: User, receiver: Receiver
) -> None:
    webhook, _ = make_webhook(db_session, user, receiver.url)
    webhook.secret_ciphertext = "gAAAAAnot-a-valid-token"
    db_session.commit()
    emit(db_session, user)
    assert background.attempt_delivery(only_delivery(db_session, webhook).id) == "permanent"
    delivery = only_delivery(db_session, webhook)
    assert delivery.state == "failed"
    assert delivery.last_error is not None
    assert "cannot be decrypted" in delivery.last_error
    assert receiver.count() == 0


# --- circuit breaker ----------------------------------------------------------------------


def test_the_breaker_disables_an_endpoint_failing_for_the_whole_window(
    db_session: Session, user: User, receiver: Receiver, override_settings: Override
) -> None:
    override_settings(WEBHOOK_DISABLE_AFTER_SECONDS=60.0)
    receiver.responder = always(500)
    webhook, _ = make_webhook(db_session, user, receiver.url)
    emit(db_session, user)
    emit(db_session, user, events.TASK_DELETED)
    first, second = db_session.scalars(
        select(WebhookDelivery).order_by(WebhookDelivery.event_name.desc())
    ).all()

    background.attempt_delivery(first.id)
    db_session.expire_all()
    assert webhook.failing_since is not None
    assert webhook.is_active  # failing for less than the window
    webhook.failing_since = utcnow() - timedelta(seconds=61)
    db_session.commit()

    background.attempt_delivery(second.id)
    db_session.expire_all()
    assert webhook.is_active is False
    assert webhook.disabled_reason is not None
    assert webhook.disabled_reason.startswith("Every delivery attempt failed since")
    assert "HTTP 500" in webhook.disabled_reason
    states = {d.id: (d.state, d.last_error) for d in db_session.scalars(select(WebhookDelivery))}
    assert states == {first.id: ("failed", "endpoint disabled"), second.id: ("failed", "HTTP 500")}
    notice = db_session.scalars(
        select(OutboxEvent).where(OutboxEvent.name == events.WEBHOOK_DISABLED)
    ).one()
    assert notice.payload == {
        "webhook_id": str(webhook.id),
        "owner_id": user.id,
        "url": receiver.url,
        "reason": webhook.disabled_reason,
    }
    # New events no longer reach it, and a queued message for it does nothing.
    emit(db_session, user)
    assert len(db_session.scalars(select(WebhookDelivery)).all()) == 2
    assert background.attempt_delivery(first.id) == "not due or claimed elsewhere"


def test_a_tiny_window_disables_on_the_next_failure(
    db_session: Session, user: User, receiver: Receiver, override_settings: Override
) -> None:
    override_settings(WEBHOOK_DISABLE_AFTER_SECONDS=0.000001)
    receiver.responder = always(500)
    webhook, _ = make_webhook(db_session, user, receiver.url)
    emit(db_session, user)
    delivery = only_delivery(db_session, webhook)
    background.attempt_delivery(delivery.id)
    make_due(db_session, only_delivery(db_session, webhook))
    background.attempt_delivery(delivery.id)
    db_session.expire_all()
    assert webhook.is_active is False
    assert only_delivery(db_session, webhook).state == "failed"


def test_any_success_resets_the_breaker(
    db_session: Session, user: User, receiver: Receiver, override_settings: Override
) -> None:
    override_settings(WEBHOOK_DISABLE_AFTER_SECONDS=60.0)
    webhook, _ = make_webhook(db_session, user, receiver.url)
    webhook.failing_since = utcnow() - timedelta(seconds=30)
    db_session.commit()
    emit(db_session, user)
    assert background.attempt_delivery(only_delivery(db_session, webhook).id) == "success"
    db_session.expire_all()
    assert webhook.failing_since is None
    assert webhook.is_active


# --- sweep and purge ----------------------------------------------------------------------


def test_the_sweep_enqueues_due_unclaimed_unqueued_deliveries_once(
    db_session: Session, user: User, sent: list[tuple[str, tuple[Any, ...], Any]]
) -> None:
    make_webhook(db_session, user, "http://127.0.0.1:9/a")
    for _ in range(4):
        emit(db_session, user)
    due, leased, later, queued = db_session.scalars(select(WebhookDelivery)).all()
    now = utcnow()
    for row in (due, leased, later, queued):
        row.queued_until = None  # as if their messages were lost
    leased.lease_until = now + timedelta(seconds=30)
    later.next_attempt_at = now + timedelta(hours=1)
    queued.queued_until = now + timedelta(seconds=30)
    db_session.commit()

    assert background.sweep_due_deliveries.run() == 1
    assert sent == [("webhooks.deliver", (str(due.id),), None)]
    assert deliveries.enqueue_due(db_session, now=now) == []  # queued now: not again at once
    much_later = now + timedelta(hours=2)
    assert set(deliveries.enqueue_due(db_session, now=much_later)) == {
        due.id,
        leased.id,
        later.id,
        queued.id,
    }


def test_the_sweep_is_bounded_by_its_batch(
    db_session: Session, user: User, override_settings: Override
) -> None:
    override_settings(WEBHOOK_SWEEP_BATCH=2)
    make_webhook(db_session, user, "http://127.0.0.1:9/a")
    for _ in range(3):
        emit(db_session, user)
    later = utcnow() + timedelta(minutes=5)
    assert len(deliveries.enqueue_due(db_session, now=later)) == 2
    assert len(deliveries.enqueue_due(db_session, now=later)) == 1


def test_purge_deletes_only_old_finished_deliveries(db_session: Session, user: User) -> None:
    make_webhook(db_session, user, "http://127.0.0.1:9/a")
    for _ in range(3):
        emit(db_session, user)
    old_done, old_pending, recent_done = db_session.scalars(select(WebhookDelivery)).all()
    long_ago = utcnow() - timedelta(days=31)
    old_done.state, old_done.created_at = "succeeded", long_ago
    old_pending.created_at = long_ago
    recent_done.state = "dead"
    db_session.commit()
    assert background.purge_old_deliveries.run() == 1
    db_session.expire_all()
    remaining = {row.id for row in db_session.scalars(select(WebhookDelivery))}
    assert remaining == {old_pending.id, recent_done.id}


def test_the_body_is_the_same_on_every_attempt(
    db_session: Session, user: User, receiver: Receiver
) -> None:
    receiver.responder = failing_first(1)
    webhook, _ = make_webhook(db_session, user, receiver.url)
    emit(db_session, user)
    delivery = only_delivery(db_session, webhook)
    background.attempt_delivery(delivery.id)
    make_due(db_session, only_delivery(db_session, webhook))
    background.attempt_delivery(delivery.id)
    first, second = receiver.snapshot()
    assert first.body == second.body
    assert json.loads(first.body)["type"] == "task.created"
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(delivery.id)
    assert uuid.UUID(first.headers["webhook-id"]) == delivery.id
