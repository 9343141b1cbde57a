"""User management rules, below the HTTP layer."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import Conflict, NotFound
from app.events.models import OutboxEvent
from app.users import service
from app.users.auth_service import unique_email
from app.users.models import User
from tests.factories import AdminFactory, UserFactory


def _events(session: Session, name: str) -> list[dict[str, object]]:
    return [
        event.payload
        for event in session.scalars(select(OutboxEvent).where(OutboxEvent.name == name))
    ]


def test_create_user_normalises_email_and_records_event(db_session: Session) -> None:
    user = service.create_user(
        session=db_session, email=" Root@Example.COM", password="long enough", role="admin"
    )

    assert (user.email, user.role) == ("root@example.com", "admin")
    assert _events(db_session, "user.registered") == [{"user_id": user.id}]


def test_create_user_refuses_a_taken_email_and_records_nothing(db_session: Session) -> None:
    existing = UserFactory()

    with pytest.raises(Conflict):
        service.create_user(session=db_session, email=existing.email.upper(), password="x" * 8)

    assert _events(db_session, "user.registered") == []


def test_a_concurrent_duplicate_email_becomes_a_conflict(db_session: Session) -> None:
    # The pre-check can miss a row inserted by a concurrent transaction; the unique
    # constraint catches it, and only the SAVEPOINT is rolled back.
    first = UserFactory(email="first@example.com")
    second = UserFactory(email="second@example.com")

    with pytest.raises(Conflict), unique_email(db_session):
        second.email = first.email

    assert db_session.scalar(select(User.email).where(User.id == second.id)) == "second@example.com"
    assert second.email == "second@example.com"
    assert db_session.get(User, first.id) is first


@pytest.mark.parametrize("user_id", [0, -1, 2**63])
def test_get_user_out_of_range_ids_are_not_found(db_session: Session, user_id: int) -> None:
    with pytest.raises(NotFound):
        service.get_user(session=db_session, user_id=user_id)


def test_list_users_counts_all_matches_and_pages_by_id(db_session: Session) -> None:
    users = UserFactory.create_batch(5)

    items, total = service.list_users(session=db_session, page=2, page_size=2)

    assert total == 5
    assert [item.id for item in items] == sorted(user.id for user in users)[2:4]


def test_any_admin(db_session: Session) -> None:
    UserFactory()
    assert service.any_admin(session=db_session) is None

    admin = AdminFactory()

    assert service.any_admin(session=db_session) == admin


def test_update_user_may_not_demote_self(db_session: Session) -> None:
    admin = AdminFactory()

    with pytest.raises(Conflict):
        service.update_user(
            session=db_session, actor_id=admin.id, user_id=admin.id, changes={"role": "user"}
        )


def test_delete_user_records_event(db_session: Session) -> None:
    admin, user = AdminFactory(), UserFactory()

    service.delete_user(session=db_session, actor_id=admin.id, user_id=user.id)

    assert db_session.get(User, user.id) is None
    assert _events(db_session, "user.deleted") == [{"user_id": user.id}]
