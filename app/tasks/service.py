"""The rules of tasks: ownership, completion time, optimistic locking and domain events.

Every function is one transaction. Single-task functions are scoped by owner in the query
itself, so another user's task is simply not found (404), never forbidden (403) — and that holds
for administrators too. ``expected_versions`` carries ``If-Match``: the version read is checked
against it, and the UPDATE or DELETE is conditional on that version (``version_id_col``), so a
change committed in between fails with ``PreconditionFailed`` instead of being overwritten.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql.elements import UnaryExpression

from app.core.auth import Principal
from app.core.database import utcnow
from app.core.errors import Forbidden, NotFound, PreconditionFailed
from app.core.queries import LIKE_ESCAPE, json_array_contains, like_contains
from app.events.service import TASK_COMPLETED, TASK_CREATED, TASK_DELETED, TASK_UPDATED, record
from app.tasks.models import Task, TaskPriority, TaskStatus

EDITABLE_FIELDS = ("title", "description", "status", "priority", "due_at", "tags")
DEFAULTS: Mapping[str, Any] = {
    "description": None,
    "status": TaskStatus.TODO,
    "priority": TaskPriority.NORMAL,
    "due_at": None,
    "tags": [],
}
DEFAULT_SORT = "-created_at"


def create_task(session: Session, *, owner_id: int, values: Mapping[str, Any]) -> Task:
    """Create a task for ``owner_id``; records ``task.created`` (and ``task.completed`` when it
    is created done)."""
    now = utcnow()
    task = Task(owner_id=owner_id, created_at=now, updated_at=now)
    became_done = _apply(task, {**DEFAULTS, **values}, now=now)
    session.add(task)
    session.flush()
    record(session, TASK_CREATED, _event_payload(task, task=_snapshot(task)))
    if became_done:
        record(session, TASK_COMPLETED, _completed_payload(task))
    session.commit()
    return task


def get_task(session: Session, *, owner_id: int, task_id: int) -> Task:
    """The task ``task_id`` of ``owner_id``; ``NotFound`` if it is missing or someone else's."""
    task = session.scalars(_owned(owner_id, task_id)).one_or_none()
    if task is None:
        raise NotFound("Task not found.")
    return task


def replace_task(
    session: Session,
    *,
    owner_id: int,
    task_id: int,
    values: Mapping[str, Any],
    expected_versions: Collection[int] | None = None,
) -> Task:
    """Replace every editable field (omitted ones take their defaults)."""
    return _change(
        session,
        owner_id=owner_id,
        task_id=task_id,
        values={**DEFAULTS, **values},
        expected_versions=expected_versions,
    )


def update_task(
    session: Session,
    *,
    owner_id: int,
    task_id: int,
    changes: Mapping[str, Any],
    expected_versions: Collection[int] | None = None,
) -> Task:
    """Change the given fields only."""
    return _change(
        session,
        owner_id=owner_id,
        task_id=task_id,
        values=changes,
        expected_versions=expected_versions,
    )


def delete_task(
    session: Session,
    *,
    owner_id: int,
    task_id: int,
    expected_versions: Collection[int] | None = None,
) -> None:
    """Delete the task; records ``task.deleted``."""
    task = get_task(session, owner_id=owner_id, task_id=task_id)
    _check_version(task, expected_versions)
    payload = _event_payload(task)
    with _conditional_write(session):
        session.delete(task)
        session.flush()  # DELETE ... WHERE id = :id AND version = :version
        record(session, TASK_DELETED, payload)
        session.commit()


def list_tasks(
    session: Session,
    *,
    viewer: Principal,
    page: int,
    page_size: int,
    sort: str = DEFAULT_SORT,
    owner_id: int | None = None,
    status: TaskStatus | None = None,
    priority: TaskPriority | None = None,
    tag: str | None = None,
    due_after: datetime | None = None,
    due_before: datetime | None = None,
    q: str | None = None,
) -> tuple[Sequence[Task], int]:
    """One page of the tasks ``viewer`` may see, and how many match in all.

    A user sees their own tasks; an administrator sees everyone's, or one user's with
    ``owner_id``. Anyone else passing ``owner_id`` is refused (``Forbidden``).
    """
    if owner_id is not None and not viewer.is_admin:
        raise Forbidden("Only administrators may filter by owner_id.")
    conditions: list[ColumnElement[bool]] = []
    if not viewer.is_admin:
        conditions.append(Task.owner_id == viewer.user_id)
    elif owner_id is not None:
        conditions.append(Task.owner_id == owner_id)
    if status is not None:
        conditions.append(Task.status == TaskStatus(status).value)
    if priority is not None:
        conditions.append(Task.priority == TaskPriority(priority))
    if tag is not None:
        conditions.append(json_array_contains(Task.tags, tag))
    if due_after is not None:
        conditions.append(Task.due_at >= due_after)
    if due_before is not None:
        conditions.append(Task.due_at < due_before)
    if q is not None:
        conditions.append(Task.title.ilike(like_contains(q), escape=LIKE_ESCAPE))

    total = session.scalar(select(func.count()).select_from(Task).where(*conditions)) or 0
    offset = (page - 1) * page_size
    if offset >= total:
        return [], total
    query: Select[Task] = (
        select(Task).where(*conditions).order_by(*order_by(sort)).limit(page_size).offset(offset)
    )
    return session.scalars(query).all(), total


def order_by(sort: str) -> list[UnaryExpression[Any]]:
    """ORDER BY clauses of ``sort`` (``name`` or ``-name``), ending with id for a total order.

    Each order matches an index led by owner_id (see ``app.tasks.models``), read forwards or
    backwards. Tasks without ``due_at`` come last both ways: ascending, ``NULLS LAST`` is
    PostgreSQL's default; descending, ``due_at IS NOT NULL`` sorts them behind the rest.
    """
    descending = sort.startswith("-")
    name = sort.removeprefix("-")
    if name == "due_at":
        if descending:
            return [Task.due_at.is_not(None).desc(), Task.due_at.desc(), Task.id.desc()]
        return [Task.due_at.asc().nulls_last(), Task.id.asc()]
    column = {"created_at": Task.created_at, "priority": Task.priority}[name]
    if descending:
        return [column.desc(), Task.id.desc()]
    return [column.asc(), Task.id.asc()]


def _owned(owner_id: int, task_id: int) -> Select[Task]:
    return select(Task).where(Task.id == task_id, Task.owner_id == owner_id)


def _change(
    session: Session,
    *,
    owner_id: int,
    task_id: int,
    values: Mapping[str, Any],
    expected_versions: Collection[int] | None,
) -> Task:
    task = get_task(session, owner_id=owner_id, task_id=task_id)
    _check_version(task, expected_versions)
    now = utcnow()
    became_done = _apply(task, values, now=now)
    if not session.is_modified(task):
        # Writing the values a task already has changes nothing: no new version, no event.
        return task
    task.updated_at = now
    with _conditional_write(session):
        session.flush()  # UPDATE ... WHERE id = :id AND version = :version read above
        record(session, TASK_UPDATED, _event_payload(task, task=_snapshot(task)))
        if became_done:
            record(session, TASK_COMPLETED, _completed_payload(task))
        session.commit()
    return task


def _apply(task: Task, values: Mapping[str, Any], *, now: datetime) -> bool:
    """Set the editable ``values`` on ``task``; True when its status has just become done."""
    was_done = task.status == TaskStatus.DONE.value
    for name in EDITABLE_FIELDS:
        if name not in values:
            continue
        value = values[name]
        if name == "status":
            value = TaskStatus(value).value
        elif name == "priority":
            value = TaskPriority(value)
        elif name == "tags":
            value = list(value)
        elif name == "due_at" and value is not None:
            value = value.astimezone(UTC)  # as it reads back, whatever zone the client used
        setattr(task, name, value)
    is_done = task.status == TaskStatus.DONE.value
    if is_done and not was_done:
        task.completed_at = now
    elif not is_done:
        task.completed_at = None
    return is_done and not was_done


def _check_version(task: Task, expected_versions: Collection[int] | None) -> None:
    if expected_versions is not None and task.version not in expected_versions:
        raise PreconditionFailed("The task has changed since you read it; fetch it again.")


@contextmanager
def _conditional_write(session: Session) -> Iterator[None]:
    """Turn a lost race on the version (a concurrent UPDATE or DELETE) into 412."""
    try:
        yield
    except StaleDataError:
        session.rollback()
        raise PreconditionFailed(
            "The task was changed by another request; fetch it again."
        ) from None


def _event_payload(task: Task, /, **extra: Any) -> dict[str, Any]:
    return {"task_id": task.id, "owner_id": task.owner_id, **extra}


def _completed_payload(task: Task) -> dict[str, Any]:
    return _event_payload(task, completed_at=_iso(task.completed_at))


def _snapshot(task: Task) -> dict[str, Any]:
    """The task as JSON-safe values; the description (up to 10,000 characters) is left out."""
    return {
        "id": task.id,
        "owner_id": task.owner_id,
        "title": task.title,
        "status": task.status,
        "priority": TaskPriority(task.priority).value,
        "due_at": _iso(task.due_at),
        "tags": list(task.tags),
        "created_at": _iso(task.created_at),
        "updated_at": _iso(task.updated_at),
        "completed_at": _iso(task.completed_at),
        "version": task.version,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
