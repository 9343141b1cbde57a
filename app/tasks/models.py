"""The task table and its indexes (built for one owner with a million rows)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from app.core.database import Base, IdType, utcnow


class TaskStatus(enum.StrEnum):
    """Where a task stands."""

    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class TaskPriority(enum.StrEnum):
    """How urgent a task is; stored as a number so it sorts low < normal < high."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


_PRIORITY_RANK = {TaskPriority.LOW: 0, TaskPriority.NORMAL: 1, TaskPriority.HIGH: 2}
_RANK_PRIORITY = {rank: priority for priority, rank in _PRIORITY_RANK.items()}


class PriorityType(TypeDecorator[TaskPriority]):
    """``TaskPriority`` in Python, a sortable small integer in the database."""

    impl = SmallInteger()
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> int | None:
        return None if value is None else _PRIORITY_RANK[TaskPriority(value)]

    def process_result_value(self, value: int | None, dialect: Dialect) -> TaskPriority | None:
        return None if value is None else _RANK_PRIORITY[value]


class Task(Base):
    """A task owned by one user."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.TODO.value)
    priority: Mapped[TaskPriority] = mapped_column(PriorityType(), default=TaskPriority.NORMAL)
    due_at: Mapped[datetime | None]
    tags: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None]
    # Optimistic locking: every UPDATE checks and bumps it; it is also the ETag.
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint("status IN ('todo', 'in_progress', 'done')", name="status"),
        # One index per sort order, each led by owner_id and ended by id for a stable order,
        # so a page is an index range scan however many tasks the owner has.
        Index("ix_tasks_owner_created", "owner_id", "created_at", "id"),
        Index("ix_tasks_owner_due", "owner_id", "due_at", "id"),
        # Read backwards, this one gives "due_at descending, tasks without due_at last"; the one
        # above read backwards would put them first. The expression works on SQLite too.
        Index("ix_tasks_owner_due_desc", "owner_id", text("(due_at IS NOT NULL)"), "due_at", "id"),
        Index("ix_tasks_owner_priority", "owner_id", "priority", "id"),
        Index("ix_tasks_owner_status_created", "owner_id", "status", "created_at", "id"),
        Index("ix_tasks_tags", "tags", postgresql_using="gin"),
        # Due-task reminders read open tasks by due date across all owners; only open tasks with a
        # due date are indexed, so the index stays small however many tasks are done.
        Index(
            "ix_tasks_open_due",
            "due_at",
            "id",
            postgresql_where=text("status <> 'done' AND due_at IS NOT NULL"),
            sqlite_where=text("status <> 'done' AND due_at IS NOT NULL"),
        ),
    )


class TaskCount(Base):
    """How many tasks each user owns, so an unfiltered list's total is the sum of a few rows
    rather than a ``COUNT`` over all of the owner's rows.

    The database keeps it: triggers on ``tasks`` (migration ``0002_task_counts``) add and
    subtract in the same transaction as every insert, delete, owner change and truncate,
    whichever code or tool runs them. Each connection writes its own ``slot`` (its backend pid
    modulo 16), so concurrent writes of one owner rarely wait for one another's row lock; a
    slot alone may go negative, the sum is exact. The application only reads it.
    """

    __tablename__ = "task_counts"

    owner_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    slot: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default=text("0"))
    total: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
