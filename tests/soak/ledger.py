"""After the load: did every task event of a user with a webhook reach the receiver?

The database says which events were recorded (the outbox) and which deliveries exist; the
receiver says what arrived. The soak waits ("drains") until they agree or time runs out.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy
from sqlalchemy.exc import SQLAlchemyError

from tests.soak.stack import SoakStack
from tests.soak.traffic import TASK_EVENTS

FINAL_JOB_STATES = {"succeeded", "failed", "cancelled"}


@dataclass
class Ledger:
    """Events, deliveries, jobs and arrivals at one moment."""

    owners: set[int]
    events: dict[str, tuple[str, datetime, int]]  # task events: id -> (name, created_at, owner)
    deliveries: dict[str, tuple[str, str, int]]  # id -> (event id, state, attempts)
    misrouted: list[str]  # deliveries whose event belongs to someone else than the webhook's owner
    jobs: Counter[str]
    job_max_attempts: int
    outbox_unpublished: int
    outbox_undispatched: int
    received: int  # POSTs at the receiver
    received_ids: set[str]
    bad_bodies: list[str] = field(default_factory=list)

    @property
    def expected(self) -> dict[str, tuple[str, datetime, int]]:
        """Task events of the users who subscribed a webhook: each must be delivered."""
        return {key: value for key, value in self.events.items() if value[2] in self.owners}

    @property
    def without_delivery(self) -> set[str]:
        """Expected events no delivery was created for."""
        delivered_events = {event_id for event_id, _, _ in self.deliveries.values()}
        return set(self.expected) - delivered_events

    @property
    def not_succeeded(self) -> dict[str, str]:
        """Deliveries not (yet) succeeded: id -> state."""
        return {
            key: state for key, (_, state, _) in self.deliveries.items() if state != "succeeded"
        }

    @property
    def not_received(self) -> set[str]:
        """Deliveries the receiver never saw."""
        return set(self.deliveries) - self.received_ids

    @property
    def unknown_received(self) -> set[str]:
        """webhook-ids at the receiver that match no delivery."""
        return self.received_ids - set(self.deliveries)

    @property
    def duplicates(self) -> int:
        """Deliveries received more than once (at-least-once delivery allows it)."""
        return self.received - len(self.received_ids)

    @property
    def settled(self) -> bool:
        """Everything recorded was dispatched, delivered and received; every job finished."""
        return (
            not self.without_delivery
            and not self.not_succeeded
            and not self.not_received
            and self.outbox_undispatched == 0
            and set(self.jobs) <= FINAL_JOB_STATES
        )


def read_ledger(stack: SoakStack, owners: set[int]) -> Ledger:
    """Read the database and the receiver (raises if PostgreSQL does not answer)."""
    engine = stack.engine()
    try:
        with engine.connect() as connection:
            events = {
                row[0]: (row[1], row[2], int(row[3]))
                for row in connection.execute(
                    sqlalchemy.text(
                        "SELECT id::text, name, created_at, (payload->>'owner_id')::bigint "
                        "FROM outbox_events WHERE name = ANY(:names)"
                    ),
                    {"names": TASK_EVENTS},
                )
            }
            deliveries: dict[str, tuple[str, str, int]] = {}
            misrouted = []
            for row in connection.execute(
                sqlalchemy.text(
                    "SELECT d.id::text, d.event_id::text, d.state, d.attempts, w.owner_id, "
                    "(d.payload->>'owner_id')::bigint FROM webhook_deliveries d "
                    "JOIN webhooks w ON w.id = d.webhook_id"
                )
            ):
                deliveries[row[0]] = (row[1], row[2], int(row[3]))
                if row[4] != row[5]:
                    misrouted.append(row[0])
            jobs: Counter[str] = Counter()
            max_attempts = 0
            for state, count, attempts in connection.execute(
                sqlalchemy.text("SELECT state, count(*), max(attempts) FROM jobs GROUP BY state")
            ):
                jobs[state] = int(count)
                max_attempts = max(max_attempts, int(attempts or 0))
            unpublished, undispatched = connection.execute(
                sqlalchemy.text(
                    "SELECT count(*) FILTER (WHERE published_at IS NULL), "
                    "count(*) FILTER (WHERE dispatched_at IS NULL) FROM outbox_events"
                )
            ).one()
    finally:
        engine.dispose()
    received = stack.receiver.snapshot()
    bad_bodies = []
    for request in received:
        try:
            body = json.loads(request.body)
            ok = body["type"] in TASK_EVENTS and body["data"]["owner_id"] in owners
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok or not request.headers.get("webhook-signature"):
            bad_bodies.append(request.headers.get("webhook-id", "?"))
    return Ledger(
        owners=owners,
        events=events,
        deliveries=deliveries,
        misrouted=misrouted,
        jobs=jobs,
        job_max_attempts=max_attempts,
        outbox_unpublished=int(unpublished),
        outbox_undispatched=int(undispatched),
        received=len(received),
        received_ids={request.headers.get("webhook-id", "") for request in received},
        bad_bodies=bad_bodies,
    )


def drain(stack: SoakStack, owners: set[int], timeout: float) -> tuple[Ledger | None, float]:
    """Poll until the ledger settles or ``timeout``; (last ledger, seconds waited)."""
    begin = time.monotonic()
    ledger = None
    while True:
        try:
            ledger = read_ledger(stack, owners)
        except SQLAlchemyError:
            ledger = None
        waited = time.monotonic() - begin
        if (ledger is not None and ledger.settled) or waited > timeout:
            return ledger, waited
        time.sleep(2)
