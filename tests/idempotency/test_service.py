"""Idempotency keys: fingerprints, claims, remembering the created resource, clean-up."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.idempotency import service
from app.idempotency.models import IdempotencyKey
from app.tasks import service as tasks_service
from app.tasks.models import Task
from app.users.models import User

DAY = timedelta(hours=24)


def claim(session: Session, user: User, key: str = "k1") -> IdempotencyKey | None:
    """Claim ``key`` for ``user`` on createTask."""
    return service.claim_key(
        session,
        user_id=user.id,
        operation="createTask",
        key=key,
        fingerprint="f" * 64,
        now=utcnow(),
        ttl=DAY,
    )


def test_the_fingerprint_ignores_key_order_but_not_values_method_or_path() -> None:
    base = service.request_fingerprint("POST", "/api/v1/jobs", {"json": {"a": 1, "b": [1, 2]}})
    assert base == service.request_fingerprint(
        "post", "/api/v1/jobs", {"json": {"b": [1, 2], "a": 1}}
    )
    assert base != service.request_fingerprint(
        "POST", "/api/v1/jobs", {"json": {"a": 1, "b": [2, 1]}}
    )
    assert base != service.request_fingerprint(
        "POST", "/api/v1/tasks", {"json": {"a": 1, "b": [1, 2]}}
    )
    assert base != service.request_fingerprint(
        "PUT", "/api/v1/jobs", {"json": {"a": 1, "b": [1, 2]}}
    )
    assert len(base) == 64


def test_a_taken_key_cannot_be_claimed_and_the_transaction_goes_on(
    db_session: Session, user: User
) -> None:
    assert claim(db_session, user) is not None
    assert claim(db_session, user) is None  # the unique index, inside a SAVEPOINT
    assert claim(db_session, user, key="k2") is not None
    count = db_session.scalar(select(func.count()).select_from(IdempotencyKey))
    assert count == 2


def test_the_resource_created_by_the_commit_is_remembered_on_the_claim(
    db_session: Session, user: User
) -> None:
    record = claim(db_session, user)
    assert record is not None
    with service.remember_resource(db_session, record, Task):
        task = tasks_service.create_task(db_session, owner_id=user.id, values={"title": "Once"})
    assert record.resource_id == str(task.id)
    assert service.resource_identity(Task, record.resource_id) == task.id


def test_a_savepoint_inside_the_request_is_not_the_creating_commit(
    db_session: Session, user: User
) -> None:
    record = claim(db_session, user)
    assert record is not None
    with service.remember_resource(db_session, record, Task):
        with db_session.begin_nested():
            pass
        assert record.resource_id is None
        task = tasks_service.create_task(db_session, owner_id=user.id, values={"title": "Later"})
    assert record.resource_id == str(task.id)


def test_a_commit_that_created_nothing_forgets_the_claim(db_session: Session, user: User) -> None:
    record = claim(db_session, user)
    assert record is not None
    with service.remember_resource(db_session, record, Task):
        db_session.commit()
    assert db_session.scalars(select(IdempotencyKey)).all() == []


def test_an_expired_key_is_not_found_and_is_removed(db_session: Session, user: User) -> None:
    record = claim(db_session, user)
    assert record is not None
    later = record.expires_at + timedelta(seconds=1)
    found = service.find_key(
        db_session, user_id=user.id, operation="createTask", key="k1", now=later
    )
    assert found is None
    assert claim(db_session, user) is not None  # the key is free again


def test_purge_deletes_only_expired_keys(db_session: Session, user: User) -> None:
    expired = claim(db_session, user, key="old")
    live = claim(db_session, user, key="new")
    assert expired is not None
    assert live is not None
    expired.expires_at = utcnow() - timedelta(seconds=1)
    db_session.commit()

    assert service.purge_expired(db_session, now=utcnow(), batch=1) == 1

    assert [row.key for row in db_session.scalars(select(IdempotencyKey))] == ["new"]
