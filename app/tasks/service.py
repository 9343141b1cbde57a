"""The rules of tasks: ownership, completion time, optimistic locking and domain events.

Every function is one transaction. Single-task functions are scoped by owner in the query
itself, so another user's task is simply not found (404), never forbidden (403) — and that holds
for administrators too. ``expected_versions`` carries ``If-Match``: the version read is checked
against it, and the UPDATE or DELETE is conditional on that version (``version_id_col``), so a
change committed in between fails with ``PreconditionFailed`` instead of being overwritten.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql.elements import UnaryExpression

from app.core.auth import Principal
from app.core.database import utcnow
from app.core.errors import Forbidden, NotFound, PreconditionFailed
from app.core.queries import LIKE_ESCAPE, json_array_contains, like_contains
from app.events.service import TASK_COMPLETED, TASK_CREATED, TASK_DELETED, TASK_UPDATED, record
from app.notifications.service import withdraw_pending
from app.tasks.models import Task, TaskCount, TaskPriority, TaskStatus

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
    task = session.scalars(_OWNED, {"task_id": task_id, "owner_id": owner_id}).one_or_none()
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
        if task.due_at is not None:
            _withdraw_reminder(session, task_id=task.id, due_at=task.due_at)
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
    given = _filter_values(
        owner_id=viewer.user_id if not viewer.is_admin else owner_id,
        status=status,
        priority=priority,
        tag=tag,
        due_after=due_after,
        due_before=due_before,
        q=q,
    )
    count, page_query = _list_statements(frozenset(given), sort)
    total = session.scalar(count, given) or 0
    offset = (page - 1) * page_size
    if offset >= total:
        return [], total
    return session.scalars(page_query, {**given, "limit": page_size, "offset": offset}).all(), total


def stream_tasks(
    session: Session,
    *,
    owner_id: int,
    batch: int,
    status: TaskStatus | None = None,
    priority: TaskPriority | None = None,
    tag: str | None = None,
    due_after: datetime | None = None,
    due_before: datetime | None = None,
) -> tuple[int, Iterator[dict[str, Any]]]:
    """How many of ``owner_id``'s tasks match the filters, and those tasks ordered by id as
    ``task_values``, read ``batch`` rows at a time from one statement (one snapshot, bounded
    memory); the rows are read while the iterator is, so ``session`` must stay open until then.
    """
    given = _filter_values(
        owner_id=owner_id,
        status=status,
        priority=priority,
        tag=tag,
        due_after=due_after,
        due_before=due_before,
    )
    filters = frozenset(given)
    count, _page = _list_statements(filters, DEFAULT_SORT)
    total = session.scalar(count, given) or 0
    tasks = session.scalars(
        _stream_statement(filters), given, execution_options={"yield_per": batch}
    )
    return total, (task_values(task) for task in tasks)


def task_values(task: Task) -> dict[str, Any]:
    """The task's fields as JSON-safe values (what an export writes: no owner, no version)."""
    return {
        "id": task.id,
        "title": task.title,
        "description": task.description,
        "status": task.status,
        "priority": TaskPriority(task.priority).value,
        "due_at": _iso(task.due_at),
        "tags": list(task.tags),
        "created_at": _iso(task.created_at),
        "updated_at": _iso(task.updated_at),
        "completed_at": _iso(task.completed_at),
    }


def _filter_values(
    *,
    owner_id: int | None,
    status: TaskStatus | None,
    priority: TaskPriority | None,
    tag: str | None,
    due_after: datetime | None,
    due_before: datetime | None,
    q: str | None = None,
) -> dict[str, Any]:
    """The bound values of the filters given, each named as its condition in ``_CONDITIONS``."""
    filters = {
        "owner_id": owner_id,
        "status": None if status is None else TaskStatus(status).value,
        "priority": None if priority is None else TaskPriority(priority),
        "tag": tag,
        "due_after": due_after,
        "due_before": due_before,
        "q": None if q is None else like_contains(q),
    }
    return {name: value for name, value in filters.items() if value is not None}


def task_conditions(
    *,
    owner_id: int,
    status: TaskStatus | None = None,
    priority: TaskPriority | None = None,
    tag: str | None = None,
    due_after: datetime | None = None,
    due_before: datetime | None = None,
) -> list[ColumnElement[bool]]:
    """WHERE clauses of ``owner_id``'s tasks matching the filters, their values inlined as
    parameters (for a statement a caller builds itself, as the bulk update does)."""
    given = _filter_values(
        owner_id=owner_id,
        status=status,
        priority=priority,
        tag=tag,
        due_after=due_after,
        due_before=due_before,
    )
    return [_CONDITIONS[name](value) for name, value in given.items()]


# One condition per filter, comparing with its value or, in a statement built once per shape,
# with the bound parameter of the filter's name (``_conditions``).
_CONDITIONS: Mapping[str, Callable[[Any], ColumnElement[bool]]] = {
    "owner_id": lambda value: Task.owner_id == value,
    "status": lambda value: Task.status == value,
    "priority": lambda value: Task.priority == value,
    "tag": lambda value: json_array_contains(Task.tags, value),
    "due_after": lambda value: Task.due_at >= value,
    "due_before": lambda value: Task.due_at < value,
    "q": lambda value: Task.title.ilike(value, escape=LIKE_ESCAPE),
}


@functools.lru_cache(maxsize=1024)  # 6 sorts x 128 filter sets at most
def _list_statements(filters: frozenset[str], sort: str) -> tuple[Select[Any], Select[Any]]:
    """The total and the page queries of a list with ``filters`` given, built once per shape
    (building a statement cost more CPU than running it) and run with the values as parameters.

    Without filters other than the owner, the total is the owner's row of ``task_counts`` (or
    the sum of all of them), which triggers keep exact: no ``COUNT`` over every matching row.
    """
    conditions = _conditions(filters)
    if filters == {"owner_id"}:
        count = select(func.coalesce(func.sum(TaskCount.total), 0)).where(
            TaskCount.owner_id == bindparam("owner_id")
        )
    elif not filters:
        count = select(func.coalesce(func.sum(TaskCount.total), 0))
    else:
        count = select(func.count()).select_from(Task).where(*conditions)
    page = (
        select(Task)
        .where(*conditions)
        .order_by(*order_by(sort))
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    return count, page


@functools.lru_cache(maxsize=64)  # 32 filter sets at most, the owner always given
def _stream_statement(filters: frozenset[str]) -> Select[Any]:
    """The tasks with ``filters`` given, ordered by id (an export), built once per shape."""
    return select(Task).where(*_conditions(filters)).order_by(Task.id)


def _conditions(filters: frozenset[str]) -> list[ColumnElement[bool]]:
    return [_CONDITIONS[name](bindparam(name)) for name in sorted(filters)]


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


# Built once: constructing a statement costs more CPU than running it on a hot path.
_OWNED = select(Task).where(Task.id == bindparam("task_id"), Task.owner_id == bindparam("owner_id"))


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
    due_before = task.due_at
    became_done = _apply(task, values, now=now)
    if not session.is_modified(task):
        # Writing the values a task already has changes nothing: no new version, no event.
        return task
    task.updated_at = now
    with _conditional_write(session):
        session.flush()  # UPDATE ... WHERE id = :id AND version = :version read above
        if due_before is not None and (became_done or task.due_at != due_before):
            _withdraw_reminder(session, task_id=task.id, due_at=due_before)
        record(session, TASK_UPDATED, _event_payload(task, task=_snapshot(task)))
        if became_done:
            record(session, TASK_COMPLETED, _completed_payload(task))
        session.commit()
    return task


def reminder_key(task_id: int, due_at: datetime) -> str:
    """The dedupe key of the reminder email for ``task_id`` due at ``due_at``."""
    return f"reminder:{task_id}:{due_at.astimezone(UTC).isoformat()}"


def _withdraw_reminder(session: Session, *, task_id: int, due_at: datetime) -> None:
    """A reminder queued for this due date and not sent yet no longer applies: the task is done,
    deleted or due at another time (the next reminder run arms the new date)."""
    withdraw_pending(session, dedupe_key=reminder_key(task_id, due_at))


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
    # "id" first keeps its place when ``task_values`` sets it again: the keys keep their order.
    snapshot = {"id": task.id, "owner_id": task.owner_id, **task_values(task)}
    del snapshot["description"]
    snapshot["version"] = task.version
    return snapshot


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
