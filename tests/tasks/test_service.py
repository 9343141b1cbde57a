"""The task rules: completion time, ownership, optimistic locking, events, list queries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import Forbidden, NotFound, PreconditionFailed
from app.events.models import OutboxEvent
from app.tasks import service
from app.tasks.models import Task, TaskPriority, TaskStatus
from app.users.models import User
from tests.factories import principal
from tests.tasks.factories import TaskFactory
from tests.tasks.helpers import event_names, task_events

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


def listed(session: Session, viewer: User, **kwargs: Any) -> list[int]:
    """Ids of the first page (100) of ``viewer``'s list with ``kwargs``."""
    items, _total = service.list_tasks(
        session, viewer=principal(viewer), page=1, page_size=100, **kwargs
    )
    return [task.id for task in items]


# --- create ------------------------------------------------------------------------------------


def test_create_applies_defaults_and_records_one_created_event(
    db_session: Session, user: User
) -> None:
    task = service.create_task(db_session, owner_id=user.id, values={"title": "Write"})

    assert (task.status, task.priority, task.description, task.due_at, task.tags) == (
        "todo",
        TaskPriority.NORMAL,
        None,
        None,
        [],
    )
    assert task.version == 1
    assert task.completed_at is None
    assert task.created_at == task.updated_at
    assert task_events(db_session) == [
        (
            "task.created",
            {
                "task_id": task.id,
                "owner_id": user.id,
                "task": {
                    "id": task.id,
                    "owner_id": user.id,
                    "title": "Write",
                    "status": "todo",
                    "priority": "normal",
                    "due_at": None,
                    "tags": [],
                    "created_at": task.created_at.isoformat(),
                    "updated_at": task.updated_at.isoformat(),
                    "completed_at": None,
                    "version": 1,
                },
            },
        )
    ]


def test_create_as_done_sets_completed_at_and_records_completed(
    db_session: Session, user: User
) -> None:
    task = service.create_task(
        db_session, owner_id=user.id, values={"title": "Old", "status": TaskStatus.DONE}
    )

    assert task.completed_at == task.created_at
    assert event_names(db_session) == ["task.completed", "task.created"]


# --- completed_at ------------------------------------------------------------------------------


def test_becoming_done_sets_completed_at_and_leaving_done_clears_it(
    db_session: Session, user: User
) -> None:
    task = service.create_task(db_session, owner_id=user.id, values={"title": "A"})

    done = service.update_task(
        db_session, owner_id=user.id, task_id=task.id, changes={"status": TaskStatus.DONE}
    )
    assert done.completed_at is not None
    assert done.completed_at == done.updated_at
    first_completion = done.completed_at

    renamed = service.update_task(
        db_session, owner_id=user.id, task_id=task.id, changes={"title": "A, renamed"}
    )
    assert renamed.completed_at == first_completion  # still done: the time is kept

    reopened = service.update_task(
        db_session, owner_id=user.id, task_id=task.id, changes={"status": TaskStatus.IN_PROGRESS}
    )
    assert reopened.completed_at is None
    assert [name for name, _ in task_events(db_session)].count("task.completed") == 1


def test_completed_event_carries_the_completion_time(db_session: Session, user: User) -> None:
    task = service.create_task(db_session, owner_id=user.id, values={"title": "A"})

    service.update_task(
        db_session, owner_id=user.id, task_id=task.id, changes={"status": TaskStatus.DONE}
    )

    completed = [payload for name, payload in task_events(db_session) if name == "task.completed"]
    assert completed == [
        {"task_id": task.id, "owner_id": user.id, "completed_at": task.completed_at.isoformat()}
    ]


# --- update and replace ------------------------------------------------------------------------


def test_update_bumps_the_version_and_records_one_updated_event(
    db_session: Session, user: User
) -> None:
    task = service.create_task(db_session, owner_id=user.id, values={"title": "A"})

    service.update_task(
        db_session, owner_id=user.id, task_id=task.id, changes={"priority": TaskPriority.HIGH}
    )

    assert task.version == 2
    assert event_names(db_session) == ["task.created", "task.updated"]
    _name, payload = task_events(db_session)[-1]
    assert payload["task"]["priority"] == "high"
    assert payload["task"]["version"] == 2


def test_writing_the_current_values_changes_nothing(db_session: Session, user: User) -> None:
    due = T0 + timedelta(days=1)
    task = service.create_task(
        db_session, owner_id=user.id, values={"title": "A", "tags": ["x"], "due_at": due}
    )
    updated_at = task.updated_at

    same = service.replace_task(
        db_session,
        owner_id=user.id,
        task_id=task.id,
        values={
            "title": "A",
            "tags": ["x"],
            # The same instant in another zone is the same value.
            "due_at": due.astimezone(datetime.now().astimezone().tzinfo),
        },
    )

    assert (same.version, same.updated_at) == (1, updated_at)
    assert event_names(db_session) == ["task.created"]


def test_replace_resets_omitted_fields_to_defaults(db_session: Session, user: User) -> None:
    task = service.create_task(
        db_session,
        owner_id=user.id,
        values={
            "title": "A",
            "description": "text",
            "status": TaskStatus.DONE,
            "priority": TaskPriority.HIGH,
            "due_at": T0,
            "tags": ["x"],
        },
    )

    replaced = service.replace_task(
        db_session, owner_id=user.id, task_id=task.id, values={"title": "B"}
    )

    assert (
        replaced.title,
        replaced.description,
        replaced.status,
        replaced.priority,
        replaced.due_at,
        replaced.tags,
        replaced.completed_at,
    ) == ("B", None, "todo", TaskPriority.NORMAL, None, [], None)


# --- ownership ---------------------------------------------------------------------------------


def test_another_users_task_is_not_found_for_every_operation(
    db_session: Session, user: User, other_user: User
) -> None:
    task = TaskFactory(owner=other_user, title="Theirs")

    with pytest.raises(NotFound):
        service.get_task(db_session, owner_id=user.id, task_id=task.id)
    with pytest.raises(NotFound):
        service.update_task(db_session, owner_id=user.id, task_id=task.id, changes={"title": "x"})
    with pytest.raises(NotFound):
        service.replace_task(db_session, owner_id=user.id, task_id=task.id, values={"title": "x"})
    with pytest.raises(NotFound):
        service.delete_task(db_session, owner_id=user.id, task_id=task.id)

    db_session.expire_all()
    assert db_session.get(Task, task.id).title == "Theirs"
    assert task_events(db_session) == []


def test_administrators_are_owner_scoped_on_single_tasks(
    db_session: Session, admin: User, user: User
) -> None:
    task = TaskFactory(owner=user)

    with pytest.raises(NotFound):
        service.get_task(db_session, owner_id=admin.id, task_id=task.id)


# --- preconditions and races -------------------------------------------------------------------


def test_an_unexpected_version_fails_the_write_without_changing_anything(
    db_session: Session, user: User
) -> None:
    task = service.create_task(db_session, owner_id=user.id, values={"title": "A"})

    with pytest.raises(PreconditionFailed):
        service.update_task(
            db_session,
            owner_id=user.id,
            task_id=task.id,
            changes={"title": "B"},
            expected_versions={7},
        )
    with pytest.raises(PreconditionFailed):
        service.delete_task(db_session, owner_id=user.id, task_id=task.id, expected_versions=set())

    db_session.expire_all()
    assert (db_session.get(Task, task.id).title, event_names(db_session)) == ("A", ["task.created"])


def test_the_expected_version_lets_the_write_through(db_session: Session, user: User) -> None:
    task = service.create_task(db_session, owner_id=user.id, values={"title": "A"})

    updated = service.update_task(
        db_session, owner_id=user.id, task_id=task.id, changes={"title": "B"}, expected_versions={1}
    )

    assert (updated.title, updated.version) == ("B", 2)


def concurrent_change(session: Session, task_id: int, sql: str) -> None:
    """Change the row behind the session's back and commit, as another request would.

    The session keeps the version it has already read (``expire_on_commit=False``).
    """
    session.connection().execute(text(sql), {"id": task_id})
    session.commit()


def test_a_concurrent_update_after_the_read_fails_with_precondition(
    db_session: Session, user: User
) -> None:
    task = service.create_task(db_session, owner_id=user.id, values={"title": "A"})
    # The session still holds version 1, as a request that read the task just before would.
    concurrent_change(
        db_session, task.id, "UPDATE tasks SET title = 'theirs', version = 2 WHERE id = :id"
    )

    with pytest.raises(PreconditionFailed):
        service.update_task(
            db_session,
            owner_id=user.id,
            task_id=task.id,
            changes={"title": "mine"},
            expected_versions={1},
        )

    db_session.expire_all()
    assert db_session.get(Task, task.id).title == "theirs"
    assert event_names(db_session) == ["task.created"]


def test_a_concurrent_update_fails_an_unconditional_write_too(
    db_session: Session, user: User
) -> None:
    task = service.create_task(db_session, owner_id=user.id, values={"title": "A"})
    concurrent_change(db_session, task.id, "UPDATE tasks SET version = 2 WHERE id = :id")

    with pytest.raises(PreconditionFailed):
        service.update_task(db_session, owner_id=user.id, task_id=task.id, changes={"title": "B"})


def test_a_concurrent_update_fails_a_delete(db_session: Session, user: User) -> None:
    task = service.create_task(db_session, owner_id=user.id, values={"title": "A"})
    concurrent_change(db_session, task.id, "UPDATE tasks SET version = 2 WHERE id = :id")

    with pytest.raises(PreconditionFailed):
        service.delete_task(db_session, owner_id=user.id, task_id=task.id, expected_versions={1})

    assert db_session.scalar(select(func.count()).where(Task.id == task.id)) == 1
    assert event_names(db_session) == ["task.created"]


# --- delete and events -------------------------------------------------------------------------


def test_delete_removes_the_task_and_records_deleted(db_session: Session, user: User) -> None:
    task = service.create_task(db_session, owner_id=user.id, values={"title": "A"})
    task_id = task.id

    service.delete_task(db_session, owner_id=user.id, task_id=task_id)

    assert db_session.scalar(select(func.count()).where(Task.id == task_id)) == 0
    assert task_events(db_session)[-1] == (
        "task.deleted",
        {"task_id": task_id, "owner_id": user.id},
    )
    assert event_names(db_session) == ["task.created", "task.deleted"]


def test_a_failed_transaction_leaves_no_event(
    db_session: Session, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_session.commit()  # keep the user: the failed transaction below rolls back to here
    real_record = service.record

    def record_then_violate_a_constraint(
        session: Session, name: str, payload: dict[str, Any]
    ) -> OutboxEvent:
        recorded = real_record(session, name, payload)
        session.add(Task(owner_id=2**62, title="owner does not exist"))  # FK violation at commit
        return recorded

    monkeypatch.setattr(service, "record", record_then_violate_a_constraint)

    with pytest.raises(IntegrityError):
        service.create_task(db_session, owner_id=user.id, values={"title": "A"})
    db_session.rollback()

    assert task_events(db_session) == []
    assert db_session.scalar(select(func.count()).select_from(Task)) == 0


# --- list: visibility --------------------------------------------------------------------------


def test_a_user_lists_only_their_own_tasks(
    db_session: Session, user: User, other_user: User
) -> None:
    mine = TaskFactory(owner=user)
    TaskFactory(owner=other_user)

    assert listed(db_session, user) == [mine.id]


def test_an_administrator_lists_every_users_tasks_or_one_users(
    db_session: Session, admin: User, user: User, other_user: User
) -> None:
    users_task = TaskFactory(owner=user, created_at=T0)
    other_task = TaskFactory(owner=other_user, created_at=T0 + timedelta(seconds=1))

    assert listed(db_session, admin) == [other_task.id, users_task.id]
    assert listed(db_session, admin, owner_id=user.id) == [users_task.id]


def test_a_user_may_not_filter_by_owner(db_session: Session, user: User) -> None:
    with pytest.raises(Forbidden):
        listed(db_session, user, owner_id=user.id)


# --- list: pagination --------------------------------------------------------------------------


def test_pages_split_the_ordered_list_and_count_everything(db_session: Session, user: User) -> None:
    tasks = [TaskFactory(owner=user, created_at=T0 + timedelta(minutes=i)) for i in range(5)]

    pages = [
        service.list_tasks(db_session, viewer=principal(user), page=page, page_size=2)
        for page in (1, 2, 3, 4)
    ]

    assert [[task.id for task in items] for items, _ in pages] == [
        [tasks[4].id, tasks[3].id],
        [tasks[2].id, tasks[1].id],
        [tasks[0].id],
        [],
    ]
    assert {total for _, total in pages} == {5}


# --- list: sort order --------------------------------------------------------------------------


def test_created_at_sorts_both_ways_with_ties_broken_by_id(db_session: Session, user: User) -> None:
    later = TaskFactory(owner=user, created_at=T0 + timedelta(hours=1))
    tied = [TaskFactory(owner=user, created_at=T0) for _ in range(3)]
    tied_ids = sorted(task.id for task in tied)

    assert listed(db_session, user, sort="created_at") == [*tied_ids, later.id]
    assert listed(db_session, user, sort="-created_at") == [later.id, *reversed(tied_ids)]


def test_the_default_order_is_newest_first(db_session: Session, user: User) -> None:
    older = TaskFactory(owner=user, created_at=T0)
    newer = TaskFactory(owner=user, created_at=T0 + timedelta(seconds=1))

    assert listed(db_session, user) == [newer.id, older.id]


def test_priority_sorts_by_rank_not_name_with_ties_broken_by_id(
    db_session: Session, user: User
) -> None:
    high = TaskFactory(owner=user, priority=TaskPriority.HIGH)
    normal = [TaskFactory(owner=user, priority=TaskPriority.NORMAL) for _ in range(2)]
    low = TaskFactory(owner=user, priority=TaskPriority.LOW)
    normal_ids = sorted(task.id for task in normal)

    assert listed(db_session, user, sort="priority") == [low.id, *normal_ids, high.id]
    assert listed(db_session, user, sort="-priority") == [
        high.id,
        *reversed(normal_ids),
        low.id,
    ]


def test_due_at_sorts_both_ways_with_undated_tasks_last(db_session: Session, user: User) -> None:
    undated = [TaskFactory(owner=user, due_at=None) for _ in range(2)]
    late = TaskFactory(owner=user, due_at=T0 + timedelta(days=2))
    tied = [TaskFactory(owner=user, due_at=T0) for _ in range(2)]
    undated_ids = sorted(task.id for task in undated)
    tied_ids = sorted(task.id for task in tied)

    assert listed(db_session, user, sort="due_at") == [*tied_ids, late.id, *undated_ids]
    assert listed(db_session, user, sort="-due_at") == [
        late.id,
        *reversed(tied_ids),
        *reversed(undated_ids),
    ]


# --- list: filters -----------------------------------------------------------------------------


def test_status_and_priority_filters(db_session: Session, user: User) -> None:
    done_high = TaskFactory(owner=user, status="done", priority=TaskPriority.HIGH)
    todo_high = TaskFactory(owner=user, status="todo", priority=TaskPriority.HIGH)
    done_low = TaskFactory(owner=user, status="done", priority=TaskPriority.LOW)

    assert set(listed(db_session, user, status=TaskStatus.DONE)) == {done_high.id, done_low.id}
    assert set(listed(db_session, user, priority=TaskPriority.HIGH)) == {done_high.id, todo_high.id}
    assert listed(db_session, user, status=TaskStatus.DONE, priority=TaskPriority.HIGH) == [
        done_high.id
    ]


def test_tag_filter_matches_whole_tags_only(db_session: Session, user: User) -> None:
    tagged = TaskFactory(owner=user, tags=["work", "q1"])
    TaskFactory(owner=user, tags=["workshop"])
    TaskFactory(owner=user, tags=[])

    assert listed(db_session, user, tag="work") == [tagged.id]
    assert listed(db_session, user, tag="q1") == [tagged.id]
    assert listed(db_session, user, tag="wor") == []


def test_due_filters_are_a_half_open_interval(db_session: Session, user: User) -> None:
    at_start = TaskFactory(owner=user, due_at=T0)
    inside = TaskFactory(owner=user, due_at=T0 + timedelta(hours=1))
    TaskFactory(owner=user, due_at=T0 + timedelta(days=1))  # at the end: excluded
    TaskFactory(owner=user, due_at=None)
    end = T0 + timedelta(days=1)

    assert listed(db_session, user, due_after=T0, due_before=end, sort="due_at") == [
        at_start.id,
        inside.id,
    ]
    assert len(listed(db_session, user, due_after=T0)) == 3
    assert len(listed(db_session, user, due_before=end)) == 2


def test_q_is_a_case_insensitive_title_substring_with_wildcards_taken_literally(
    db_session: Session, user: User
) -> None:
    percent = TaskFactory(owner=user, title="Reach 100% coverage", created_at=T0)
    hundred = TaskFactory(owner=user, title="reach 100 users", created_at=T0 + timedelta(1))
    underscore = TaskFactory(owner=user, title="rename snake_case")
    TaskFactory(owner=user, title="rename snakeXcase")
    backslash = TaskFactory(owner=user, title=r"fix C:\temp")

    assert listed(db_session, user, q="REACH", sort="created_at") == [percent.id, hundred.id]
    assert listed(db_session, user, q="100%") == [percent.id]
    assert listed(db_session, user, q="e_c") == [underscore.id]
    assert listed(db_session, user, q="\\t") == [backslash.id]
    assert listed(db_session, user, q="%") == [percent.id]


# --- list: query plans -------------------------------------------------------------------------


def captured_statements(session: Session, action: Callable[[], object]) -> list[tuple[str, Any]]:
    """The SQL and parameters ``action`` sends through ``session``'s connection."""
    statements: list[tuple[str, Any]] = []
    connection = session.connection()

    def capture(_conn: Connection, _cursor: Any, sql: str, params: Any, *_args: Any) -> None:
        statements.append((sql, params))

    event.listen(connection, "before_cursor_execute", capture)
    try:
        action()
    finally:
        event.remove(connection, "before_cursor_execute", capture)
    return statements


# Each sort order of a user's list is served by an index led by owner_id, read forwards for
# ascending and backwards for descending, so a page costs the same with a million tasks.
SORT_INDEXES = {
    "-created_at": "Index Scan Backward using ix_tasks_owner_created ",
    "created_at": "Index Scan using ix_tasks_owner_created ",
    "due_at": "Index Scan using ix_tasks_owner_due ",
    "-due_at": "Index Scan Backward using ix_tasks_owner_due_desc ",
    "priority": "Index Scan using ix_tasks_owner_priority ",
    "-priority": "Index Scan Backward using ix_tasks_owner_priority ",
}


def test_a_users_page_is_read_from_an_owner_index_in_every_sort_order(
    db_session: Session, user: User, other_user: User
) -> None:
    rows = [
        {
            "owner_id": owner.id,
            "title": f"task {i}",
            "priority": list(TaskPriority)[i % 3],
            "due_at": T0 + timedelta(hours=i) if i % 4 else None,
            "created_at": T0 + timedelta(seconds=i),
            "updated_at": T0,
        }
        for owner in (user, other_user)
        for i in range(3000)
    ]
    db_session.execute(insert(Task), rows)
    db_session.execute(text("ANALYZE tasks"))

    for sort, expected_scan in SORT_INDEXES.items():
        statements = captured_statements(
            db_session,
            lambda sort=sort: service.list_tasks(
                db_session, viewer=principal(user), page=3, page_size=20, sort=sort
            ),
        )
        page_sql, page_params = next(
            (sql, params) for sql, params in statements if "LIMIT" in sql.upper()
        )
        plan = db_session.connection().exec_driver_sql(f"EXPLAIN {page_sql}", page_params)
        plan_text = "\n".join(plan.scalars())

        assert expected_scan in plan_text, f"sort={sort}\n{plan_text}"
        assert "Sort" not in plan_text, f"sort={sort}\n{plan_text}"  # the index gives the order
