"""Task test data."""

from __future__ import annotations

import factory

from app.core.database import utcnow
from app.extensions import db
from app.tasks.models import Task, TaskPriority, TaskStatus


class TaskFactory(factory.alchemy.SQLAlchemyModelFactory):  # type: ignore[misc]
    """A to-do task; pass ``owner=user`` (or ``owner_id``)."""

    class Meta:
        model = Task
        sqlalchemy_session = db.session
        sqlalchemy_session_persistence = "flush"
        exclude = ("owner",)

    owner = None
    owner_id = factory.LazyAttribute(lambda task: task.owner.id)
    title = factory.Sequence(lambda n: f"Task {n}")
    description = None
    status = TaskStatus.TODO.value
    priority = TaskPriority.NORMAL
    due_at = None
    tags = factory.LazyFunction(list)
    created_at = factory.LazyFunction(utcnow)
    updated_at = factory.LazyAttribute(lambda task: task.created_at)
