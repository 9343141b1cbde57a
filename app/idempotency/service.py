"""Remembering Idempotency-Keys, in the transaction that creates the resource.

A request with a key first *claims* it: an INSERT into ``idempotency_keys`` (unique per user,
operation and key) inside a SAVEPOINT. The claim is still uncommitted when the creating service
runs, so the service's own ``session.commit()`` commits the key together with the resource; just
before that commit, the primary key of the resource created in the session is written onto the
claim (``remember_resource``). A concurrent request with the same key blocks on the unique index
until the first one commits, then finds its row and replays it; if the first one rolled back, the
key is free again. Nothing is remembered for a request that failed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.queries import delete_in_batches
from app.idempotency.models import IdempotencyKey

_PENDING_KEY = "idempotency_pending"


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """SHA-256 (hex) of the method, the path and ``body`` in canonical JSON (sorted keys)."""
    canonical = json.dumps(
        [method.upper(), path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def find_key(
    session: Session, *, user_id: int, operation: str, key: str, now: datetime
) -> IdempotencyKey | None:
    """The live record of ``key``; an expired one is deleted (in the caller's transaction)."""
    record = session.scalars(
        select(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.operation == operation,
            IdempotencyKey.key == key,
        )
    ).one_or_none()
    if record is not None and record.expires_at <= now:
        session.delete(record)
        session.flush()
        return None
    return record


def claim_key(
    session: Session,
    *,
    user_id: int,
    operation: str,
    key: str,
    fingerprint: str,
    now: datetime,
    ttl: timedelta,
) -> IdempotencyKey | None:
    """Insert the (uncommitted) claim of ``key``; None when another transaction holds it."""
    record = IdempotencyKey(
        user_id=user_id,
        operation=operation,
        key=key,
        fingerprint=fingerprint,
        created_at=now,
        expires_at=now + ttl,
    )
    try:
        with session.begin_nested():
            session.add(record)
    except IntegrityError:
        return None  # the SAVEPOINT is rolled back; the caller's transaction goes on
    return record


@dataclass
class _Pending:
    record: IdempotencyKey
    resource: type[Any]
    created: Any = None


@contextmanager
def remember_resource(
    session: Session, record: IdempotencyKey, resource: type[Any]
) -> Iterator[None]:
    """While inside, the first ``resource`` instance inserted in ``session`` is remembered on
    ``record`` when the session commits; a commit that created none forgets the claim."""
    session.info[_PENDING_KEY] = _Pending(record, resource)
    try:
        yield
    finally:
        session.info.pop(_PENDING_KEY, None)


def resource_identity(resource: type[Any], resource_id: str) -> Any:
    """``resource_id`` (text) converted to the type of ``resource``'s primary key."""
    column = inspect(resource).primary_key[0]
    return column.type.python_type(resource_id)


def purge_expired(session: Session, *, now: datetime, batch: int) -> int:
    """Delete expired keys, ``batch`` per committed statement; returns how many went."""
    expired = select(IdempotencyKey.id).where(IdempotencyKey.expires_at < now)
    return delete_in_batches(session, model=IdempotencyKey, chosen=expired, batch=batch)


def _capture_resource(session: Session, _flush_context: Any) -> None:
    pending: _Pending | None = session.info.get(_PENDING_KEY)
    if pending is None or pending.created is not None:
        return
    for obj in session.new:
        if isinstance(obj, pending.resource):
            pending.created = obj
            return


def _fill_claim(session: Session) -> None:
    pending: _Pending | None = session.info.get(_PENDING_KEY)
    # A SAVEPOINT being released is not the creating commit.
    if pending is None or session.in_nested_transaction():
        return
    if pending.record not in session:
        return  # rolled back with an earlier failure: nothing to remember
    if pending.created is None:
        session.flush()  # a resource added but not flushed yet gets its id now
    if pending.created is None:
        session.delete(pending.record)
    else:
        identity = inspect(pending.created).identity
        pending.record.resource_id = str(identity[0])
    # Only the first commit of the request is the creation.
    session.info.pop(_PENDING_KEY, None)


def _install_listeners() -> None:
    if not event.contains(Session, "after_flush", _capture_resource):
        event.listen(Session, "after_flush", _capture_resource)
        event.listen(Session, "before_commit", _fill_claim)


_install_listeners()
