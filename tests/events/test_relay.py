"""The outbox relay: events are published right after commit, and only once the broker took them."""

from __future__ import annotations

from typing import Any

import redis
from sqlalchemy import select

from app.events import service as events
from app.events.background import sweep_outbox
from app.events.models import OutboxEvent
from app.extensions import db
from tests.support.services import free_port


def _queued_messages(stack: Any, queue: str = "events") -> int:
    return int(redis.Redis.from_url(stack.redis_url).llen(f"{stack.key_prefix}{queue}"))


def test_committed_event_is_published_at_once_by_the_kick(make_live_stack: Any) -> None:
    stack = make_live_stack()
    with stack.app.app_context():
        session = db.session()
        events.record(session, events.USER_REGISTERED, {"user_id": 1})
        session.commit()
        stored = session.scalars(select(OutboxEvent)).one()
        db.session.remove()
        session = db.session()
        stored = session.get(OutboxEvent, stored.id)
        assert stored is not None
        assert stored.published_at is not None
    assert _queued_messages(stack) == 1


def test_rolled_back_event_is_never_published(make_live_stack: Any) -> None:
    stack = make_live_stack()
    with stack.app.app_context():
        session = db.session()
        events.record(session, events.USER_REGISTERED, {"user_id": 1})
        session.flush()
        session.rollback()
        assert session.scalars(select(OutboxEvent)).all() == []
    assert _queued_messages(stack) == 0


def test_broker_down_leaves_the_event_for_the_sweep(make_live_stack: Any) -> None:
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"
    down = make_live_stack(CELERY_BROKER_URL=dead_broker, REDIS_URL=dead_broker)
    with down.app.app_context():
        session = db.session()
        events.record(session, events.TASK_CREATED, {"task_id": 1, "owner_id": 1})
        session.commit()  # the write itself succeeds although the broker is down
        db.session.remove()
        stored = db.session().scalars(select(OutboxEvent)).one()
        assert stored.published_at is None
        assert stored.publish_attempts == 1
        assert "Error" in (stored.last_error or "")

    # The broker is back (same database, a reachable Redis): the sweep publishes it once.
    up = make_live_stack(fresh=False, OUTBOX_SWEEP_GRACE_SECONDS="0")
    with up.app.app_context():
        assert sweep_outbox.run() == 1
        assert sweep_outbox.run() == 0
        db.session.remove()
        assert db.session().scalars(select(OutboxEvent)).one().published_at is not None
    assert _queued_messages(up) == 1


def test_embedded_sqlite_broker_accepts_published_events(tmp_path: Any) -> None:
    """`make run` needs no Redis: the kick publishes to kombu's SQLAlchemy transport."""
    from alembic import command

    from app import create_app
    from app.cli import alembic_config

    app = create_app(
        {
            "APP_ENV": "testing",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
            "CELERY_BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",
            "OUTBOX_KICK_ENABLED": True,
        }
    )
    with app.app_context():
        with db.engine.connect() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        session = db.session()
        events.record(session, events.USER_REGISTERED, {"user_id": 1})
        session.commit()
        db.session.remove()
        stored = db.session().scalars(select(OutboxEvent)).one()
        assert stored.last_error is None
        assert stored.published_at is not None
        with app.extensions["celery"].connection_for_read() as connection:
            message = connection.SimpleQueue("events").get(timeout=5)
            assert message.headers["task"] == "events.dispatch"
            assert message.payload[0] == [str(stored.id)]


def test_a_published_event_whose_message_was_lost_is_dispatched_after_all(
    make_live_stack: Any,
) -> None:
    """Redis restarted without persistence (or a killed worker's message waits for the
    visibility timeout): the sweep republishes what was never dispatched."""
    from tests.support.live import wait_for

    stack = make_live_stack(
        OUTBOX_REDISPATCH_AFTER_SECONDS="0.5", OUTBOX_SWEEP_INTERVAL_SECONDS="0.5"
    )
    with stack.app.app_context():
        session = db.session()
        events.record(session, events.USER_DELETED, {"user_id": 1})
        session.commit()
        event_id = session.scalars(select(OutboxEvent.id)).one()
        db.session.remove()
    assert _queued_messages(stack) == 1
    redis.Redis.from_url(stack.redis_url).delete(f"{stack.key_prefix}events")  # the loss

    stack.start_worker(queues="events")
    stack.start_beat()

    def dispatched() -> bool:
        with stack.app.app_context():
            db.session.remove()
            row = db.session().get(OutboxEvent, event_id)
            return row is not None and row.dispatched_at is not None

    wait_for(dispatched, 30, "the lost event to be dispatched")


def test_events_committed_in_requests_are_published_off_the_request_thread(
    make_live_stack: Any,
) -> None:
    """A request only hands its event ids over; the process's publisher thread publishes them
    (several requests' events in one batch) and marks them published."""
    import threading

    from app.events.relay import PUBLISHER
    from tests.support.live import wait_for

    stack = make_live_stack()
    request_threads: set[int] = set()
    for number in range(3):
        with stack.app.test_request_context("/api/v1/tasks", method="POST"):
            session = db.session()
            events.record(session, events.TASK_CREATED, {"task_id": number, "owner_id": 1})
            session.commit()
            request_threads.add(threading.get_ident())
            db.session.remove()

    def all_published() -> bool:
        with stack.app.app_context():
            db.session.remove()
            rows = db.session().scalars(select(OutboxEvent)).all()
            return len(rows) == 3 and all(row.published_at is not None for row in rows)

    wait_for(all_published, 10, "the publisher thread to publish the three events")
    assert _queued_messages(stack) == 3
    assert PUBLISHER._thread is not None
    assert PUBLISHER._thread.ident not in request_threads


def test_the_publisher_publishes_what_is_queued_when_the_process_exits(
    make_live_stack: Any,
) -> None:
    from app.events.relay import PUBLISHER

    stack = make_live_stack()
    with stack.app.test_request_context("/api/v1/tasks", method="POST"):
        session = db.session()
        events.record(session, events.TASK_CREATED, {"task_id": 1, "owner_id": 1})
        session.commit()
        db.session.remove()
    PUBLISHER.stop()  # what atexit runs: the queue is drained before the thread ends
    assert _queued_messages(stack) == 1
