"""Publishing the outbox: a kick right after each commit, and a periodic sweep as the safety net.

At-least-once: a row is marked published only after the broker accepted its message; if the
process dies in between, the sweep publishes it again and the idempotent consumers absorb it.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from flask import Flask, current_app, has_app_context, has_request_context
from sqlalchemy import bindparam, event, select, update
from sqlalchemy.orm import Session

from app.config import current_settings
from app.core.database import relax_commit_durability, utcnow
from app.core.messaging import send_task
from app.events.models import OutboxEvent
from app.extensions import db

logger = logging.getLogger(__name__)

DISPATCH_TASK = "events.dispatch"
_NEW_EVENTS_KEY = "outbox_new_event_ids"
PUBLISH_BATCH = 500  # events published per query by the publisher thread
# After a failed publish, kicks are skipped for a while: a dead broker must not cost every
# request a connection attempt. The sweep keeps trying on its own schedule.
BROKER_BACKOFF_SECONDS = 5.0
_broker_down_until = 0.0
_listeners_installed = False
_install_lock = threading.Lock()


def publish_pending(
    session: Session,
    *,
    batch: int,
    older_than: timedelta | None = None,
    undispatched_for: timedelta | None = None,
) -> int:
    """The sweep's publishing: up to ``batch`` events, marked published; return how many went
    out.

    By default the unpublished ones; with ``undispatched_for``, instead those published that
    long ago whose dispatch never completed (the message was lost with a worker or a Redis).
    Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so two sweeps never publish the same row at
    the same time (SQLite, single-process, ignores the clause); the kick does not claim
    (``publish_committed``).
    """
    global _broker_down_until
    order: Any
    if undispatched_for is None:
        query = select(OutboxEvent).where(OutboxEvent.published_at.is_(None))
        order = OutboxEvent.created_at
    else:
        query = select(OutboxEvent).where(
            OutboxEvent.published_at.is_not(None),
            OutboxEvent.dispatched_at.is_(None),
            OutboxEvent.published_at <= utcnow() - undispatched_for,
        )
        order = OutboxEvent.published_at
    if older_than is not None:
        query = query.where(OutboxEvent.created_at <= utcnow() - older_than)
    query = query.order_by(order).limit(batch).with_for_update(skip_locked=True)
    published = 0
    try:
        # A "published" mark lost in a database crash only means publishing once more.
        relax_commit_durability(session)
        for outbox_event in session.scalars(query).all():
            try:
                send_task(
                    DISPATCH_TASK, (str(outbox_event.id),), request_id=outbox_event.request_id
                )
            except Exception as exc:  # any broker failure: leave the row for the next sweep
                outbox_event.publish_attempts += 1
                outbox_event.last_error = f"{type(exc).__name__}: {exc}"[:500]
                _broker_down_until = time.monotonic() + BROKER_BACKOFF_SECONDS
                logger.warning(
                    "outbox publish failed; will retry",
                    extra={"event_id": str(outbox_event.id), "error": type(exc).__name__},
                )
                break
            outbox_event.published_at = utcnow()
            published += 1
        session.commit()
    except Exception:
        session.rollback()
        raise
    if published:
        _broker_down_until = 0.0
    return published


# An event a transaction just committed: its id and the request id its message carries.
Committed = tuple[uuid.UUID, str | None]


def kick(app: Flask, events: list[Committed]) -> None:
    """Publish just-committed events now, then mark them published; never raises."""
    if time.monotonic() < _broker_down_until:
        return
    if has_app_context():
        # Already inside a context (a Celery task, the CLI): pushing another would tear down
        # the scoped session that is still finishing its commit.
        _publish_now(events)
        return
    with app.app_context():
        _publish_now(events)


def _publish_now(events: list[Committed]) -> None:
    try:
        publish_committed(events)
    except Exception:
        logger.warning("outbox kick failed; the sweep will publish", exc_info=True)


def publish_committed(events: list[Committed]) -> int:
    """Publish events their transaction just committed, then mark those the broker took with
    one ``UPDATE``; return how many went out.

    No claim first: the sweep only takes events older than ``OUTBOX_SWEEP_GRACE_SECONDS``, so
    the two rarely meet, and when they do the message goes out twice, which the idempotent
    consumers absorb (a process dying between the publish and the mark does the same). Claiming
    cost a transaction of four statements per batch: a third of the publisher's CPU, which
    shares the request threads' interpreter (profile of POST /api/v1/tasks).
    """
    global _broker_down_until
    sent: list[uuid.UUID] = []
    failure: tuple[uuid.UUID, Exception] | None = None
    for event_id, request_id in events:
        try:
            send_task(DISPATCH_TASK, (str(event_id),), request_id=request_id)
        except Exception as exc:  # any broker failure: leave the rest for the sweep
            failure = (event_id, exc)
            break
        sent.append(event_id)
    # Autocommit: each UPDATE is its own transaction, no BEGIN or COMMIT round trips.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if sent:
            connection.execute(_MARK_PUBLISHED, {"event_ids": sent, "now": utcnow()})
        if failure is not None:
            failed_id, error = failure
            connection.execute(
                _RECORD_FAILURE,
                {"event_id": failed_id, "error": f"{type(error).__name__}: {error}"[:500]},
            )
            _broker_down_until = time.monotonic() + BROKER_BACKOFF_SECONDS
            logger.warning(
                "outbox publish failed; will retry",
                extra={"event_id": str(failed_id), "error": type(error).__name__},
            )
    if sent:
        _broker_down_until = 0.0
    return len(sent)


_MARK_PUBLISHED = (
    update(OutboxEvent)
    .where(OutboxEvent.id.in_(bindparam("event_ids", expanding=True)))
    .where(OutboxEvent.published_at.is_(None))
    .values(published_at=bindparam("now"))
)
_RECORD_FAILURE = (
    update(OutboxEvent)
    .where(OutboxEvent.id == bindparam("event_id"))
    .values(publish_attempts=OutboxEvent.publish_attempts + 1, last_error=bindparam("error"))
)


def _collect_new_events(session: Session, _flush_context: Any) -> None:
    new = [(obj.id, obj.request_id) for obj in session.new if isinstance(obj, OutboxEvent)]
    if new:
        session.info.setdefault(_NEW_EVENTS_KEY, []).extend(new)


def _forget_events(session: Session, *_args: Any) -> None:
    session.info.pop(_NEW_EVENTS_KEY, None)


class Publisher:
    """One thread per process that publishes the events of committed requests.

    A request thread only hands over the ids of the events it committed; the thread publishes
    whatever has piled up in one go (one query, one commit for the batch). Before, the publish
    ran in the request's own thread after the response and held the connection's next request
    for about as long as the request itself (profile: 40% of a gunicorn worker's time under
    POST /api/v1/tasks). Ids still queued when a process dies are the sweep's, as are those of a
    failed publish.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Flask, list[Committed]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pid = 0
        self._thread: threading.Thread | None = None

    def submit(self, app: Flask, events: list[Committed]) -> None:
        """Queue ``events`` of ``app`` for publishing; returns at once."""
        self._ensure_running()
        self._queue.put((app, list(events)))

    def _ensure_running(self) -> None:
        pid = os.getpid()
        if self._pid == pid:
            return
        with self._lock:
            if self._pid != pid:  # first use in this process (threads do not survive a fork)
                self._queue = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._run, name="outbox-publisher", daemon=True
                )
                self._thread.start()
                self._pid = pid
                atexit.register(self.stop)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: dict[Flask, list[Committed]] = {}
            stop = item is None
            while item is not None:
                batch.setdefault(item[0], []).extend(item[1])
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                stop = stop or item is None
            for app, events in batch.items():
                for start in range(0, len(events), PUBLISH_BATCH):
                    kick(app, events[start : start + PUBLISH_BATCH])
            if stop:
                return

    def stop(self, timeout: float = 5.0) -> None:
        """Publish what is queued and end the thread (at process exit)."""
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            return
        self._queue.put(None)
        thread.join(timeout)
        self._pid = 0  # a later submit starts a new thread


PUBLISHER = Publisher()


def _after_commit(session: Session) -> None:
    events: list[Committed] | None = session.info.pop(_NEW_EVENTS_KEY, None)
    if not events or not has_app_context():
        return
    if not current_settings().OUTBOX_KICK_ENABLED:
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if has_request_context():
        # The client never waits on the broker: the process's publisher thread takes it.
        PUBLISHER.submit(app, events)
        return
    kick(app, events)


def install_outbox_kick(app: Flask) -> None:
    """Publish the events of every committed transaction right away (off the request thread)."""
    global _listeners_installed
    with _install_lock:
        if not _listeners_installed:
            event.listen(Session, "after_flush", _collect_new_events)
            event.listen(Session, "after_commit", _after_commit)
            event.listen(Session, "after_soft_rollback", _forget_events)
            _listeners_installed = True
