"""The task conditions of the bulk update (the export reads through the tasks service)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement

from app.core.queries import json_array_contains
from app.tasks.models import Task, TaskPriority, TaskStatus


def task_conditions(owner_id: int, task_filter: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    """WHERE clauses for ``owner_id``'s tasks matching ``task_filter`` (a loaded ``TaskFilter``)."""
    conditions: list[ColumnElement[bool]] = [Task.owner_id == owner_id]
    if task_filter.get("status") is not None:
        conditions.append(Task.status == TaskStatus(task_filter["status"]).value)
    if task_filter.get("priority") is not None:
        conditions.append(Task.priority == TaskPriority(task_filter["priority"]))
    if task_filter.get("tag") is not None:
        conditions.append(json_array_contains(Task.tags, task_filter["tag"]))
    if task_filter.get("due_after") is not None:
        conditions.append(Task.due_at >= task_filter["due_after"])
    if task_filter.get("due_before") is not None:
        conditions.append(Task.due_at < task_filter["due_before"])
    return conditions
