"""``task_counts`` stays exact whatever writes the tasks, and list totals come from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, NullPool, create_engine, func, select, text
from sqlalchemy.orm import Session

from app.extensions import db
from app.tasks import service
from app.tasks.models import Task, TaskCount
from app.users.models import User
from tests.factories import principal
from tests.support.database import insert_user, migrate, migration_app

INSERT_TASKS = """
INSERT INTO tasks (owner_id, title, status, priority, tags, created_at, updated_at, version)
SELECT owner_id, 'Bulk ' || n, 'todo', 1, '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1
FROM (SELECT :first AS owner_id UNION ALL SELECT :second) AS owners,
     (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3) AS numbers
"""


def counted(connection: Connection | Session) -> dict[int, int]:
    """Owner -> total as ``task_counts`` holds it, its slots added up (owners with no task left
    omitted)."""
    rows = connection.execute(
        select(TaskCount.owner_id, func.sum(TaskCount.total)).group_by(TaskCount.owner_id)
    ).all()
    return {owner: int(total) for owner, total in rows if total}


def actual(connection: Connection | Session) -> dict[int, int]:
    """Owner -> number of task rows."""
    rows = connection.execute(select(Task.owner_id, func.count()).group_by(Task.owner_id)).all()
    return dict(rows)  # type: ignore[arg-type]


def exercise(connection: Any, first: int, second: int) -> None:
    """Every kind of write the triggers follow, checking the counts after each."""
    connection.execute(text(INSERT_TASKS), {"first": first, "second": second})
    assert counted(connection) == actual(connection)
    assert counted(connection)[first] == counted(connection)[second] == 3

    connection.execute(
        text("DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE owner_id = :o LIMIT 2)"),
        {"o": first},
    )
    assert counted(connection) == actual(connection)

    moved = connection.execute(
        text("SELECT id FROM tasks WHERE owner_id = :o LIMIT 1"), {"o": second}
    ).scalar_one()
    connection.execute(
        text("UPDATE tasks SET owner_id = :o WHERE id = :id"), {"o": first, "id": moved}
    )
    connection.execute(text("UPDATE tasks SET title = 'renamed' WHERE owner_id = :o"), {"o": first})
    assert counted(connection) == actual(connection)
    assert counted(connection)[first] == 2

    connection.execute(text("DELETE FROM users WHERE id = :o"), {"o": second})
    assert counted(connection) == actual(connection)
    remaining = connection.execute(
        select(TaskCount.owner_id).where(TaskCount.owner_id == second)
    ).all()
    assert remaining == []


def test_counts_follow_every_write_on_postgresql(
    db_session: Session, user: User, other_user: User
) -> None:
    exercise(db_session, user.id, other_user.id)


def test_truncate_clears_the_counts_on_postgresql(db_session: Session, user: User) -> None:
    db_session.execute(text(INSERT_TASKS), {"first": user.id, "second": user.id})
    assert counted(db_session)[user.id] == 6
    db_session.execute(text("TRUNCATE tasks CASCADE"))  # rolled back with the test
    assert counted(db_session) == {}


def test_counts_follow_every_write_on_sqlite(tmp_path: Path) -> None:
    """The embedded default of ``make run`` keeps the same counts with row-level triggers."""
    app = migration_app(f"sqlite:///{tmp_path / 'app.db'}", tmp_path)
    migrate(app, "upgrade", "head")
    with app.app_context(), db.engine.begin() as connection:
        owners = [insert_user(connection, f"owner{number}@example.com") for number in range(2)]
        exercise(connection, *owners)


def test_the_migration_counts_the_tasks_that_exist(tmp_path: Path) -> None:
    app = migration_app(f"sqlite:///{tmp_path / 'app.db'}", tmp_path)
    migrate(app, "upgrade", "0001")
    with app.app_context(), db.engine.begin() as connection:
        owner = insert_user(connection, "o@example.com")
        connection.execute(text(INSERT_TASKS), {"first": owner, "second": owner})
    migrate(app, "upgrade", "head")
    with app.app_context(), db.engine.connect() as connection:
        assert counted(connection) == {owner: 6}


@pytest.mark.parametrize("as_admin", [False, True])
def test_list_totals_come_from_the_counts(
    db_session: Session, user: User, other_user: User, admin: User, as_admin: bool
) -> None:
    db_session.execute(text(INSERT_TASKS), {"first": user.id, "second": other_user.id})
    # A total the triggers did not write shows that the list reads it rather than counting.
    db_session.execute(text("DELETE FROM task_counts WHERE owner_id = :o"), {"o": user.id})
    db_session.execute(
        text("INSERT INTO task_counts (owner_id, slot, total) VALUES (:o, 3, 40), (:o, 7, 1)"),
        {"o": user.id},
    )
    viewer, owner = (admin, user.id) if as_admin else (user, None)
    _items, total = service.list_tasks(
        db_session, viewer=principal(viewer), page=1, page_size=20, owner_id=owner
    )
    assert total == 41
    # A filtered list counts its rows.
    _items, filtered = service.list_tasks(
        db_session, viewer=principal(viewer), page=1, page_size=20, owner_id=owner, status="todo"
    )
    assert filtered == 3


def test_an_administrators_unfiltered_total_is_every_task(
    db_session: Session, user: User, other_user: User, admin: User
) -> None:
    db_session.execute(text(INSERT_TASKS), {"first": user.id, "second": other_user.id})
    _items, total = service.list_tasks(db_session, viewer=principal(admin), page=1, page_size=5)
    assert total == db_session.scalar(select(func.count()).select_from(Task))


def test_concurrent_writers_of_one_owner_do_not_wait_for_each_other(
    live_database_url: str,
) -> None:
    """Each connection counts in the slot of its backend pid: while one transaction that
    created a task is still open, another connection creates one for the same owner at once
    (one counter row per owner made every create wait for the previous commit)."""
    engine = create_engine(live_database_url, poolclass=NullPool)
    try:
        with engine.begin() as setup:
            owner = insert_user(setup, "slots@example.com")
        first = engine.connect()
        first_slot = first.execute(text("SELECT pg_backend_pid() % 16")).scalar_one()
        first.execute(text(INSERT_TASKS), {"first": owner, "second": owner})  # open, uncommitted
        others = []
        try:
            second = engine.connect()
            while second.execute(text("SELECT pg_backend_pid() % 16")).scalar_one() == first_slot:
                others.append(second)  # same slot: keep it open so the next pid differs
                assert len(others) < 50
                second = engine.connect()
            second.execute(text("SET lock_timeout = '2s'"))
            second.execute(text(INSERT_TASKS), {"first": owner, "second": owner})  # no wait
            second.commit()
            first.commit()
            assert counted(second)[owner] == 12
        finally:
            for connection in (first, second, *others):
                connection.close()
    finally:
        with engine.begin() as cleanup:
            cleanup.execute(text("DELETE FROM users WHERE email = 'slots@example.com'"))
        engine.dispose()
