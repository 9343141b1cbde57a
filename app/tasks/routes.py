"""The tasks API: a user's own tasks, with conditional reads and writes through ETags."""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask.views import MethodView

from app.core.api import Blueprint, links
from app.core.auth import current_principal
from app.core.etag import (
    ETAG_HEADER_DOC,
    NOT_MODIFIED_DOC,
    IfMatchHeader,
    conditional,
    version_etag,
)
from app.core.schemas import page_meta
from app.extensions import db
from app.idempotency.decorator import idempotent
from app.tasks import service
from app.tasks.models import Task as TaskModel
from app.tasks.schemas import Task, TaskCreate, TaskPage, TaskQueryArgs, TaskReplace, TaskUpdate

blp = Blueprint(
    "tasks",
    __name__,
    url_prefix="/tasks",
    description=(
        "Your tasks. Someone else's task is always 404, for administrators too; only the list "
        "lets administrators see every user's tasks."
    ),
)

TASK_ID = "/<int(max=9223372036854775807):task_id>"
_TASK_HEADERS = {"ETag": ETAG_HEADER_DOC}
_LIST_HEADERS = {
    "ETag": {
        "description": "Weak entity tag of this page; send it back in If-None-Match",
        "schema": {"type": "string", "example": 'W/"5d41402abc4b2a76b9719d911017c592"'},
    }
}


def _etag_headers(task: Any) -> dict[str, str]:
    return {"ETag": version_etag(task.version)}


def _created_headers(task: Any) -> dict[str, str]:
    return {**_etag_headers(task), "Location": url_for(".TaskItem", task_id=task.id)}


@blp.route("")
class Tasks(MethodView):
    """The collection of tasks."""

    @blp.auth()
    @blp.arguments(TaskQueryArgs, location="query")
    @conditional
    @blp.response(200, TaskPage, headers=_LIST_HEADERS)
    @blp.alt_response(304, **NOT_MODIFIED_DOC)
    @blp.errors(403, 422)
    @blp.doc(operationId="listTasks")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List tasks (filtered, sorted, paginated)."""
        items, total = service.list_tasks(db.session(), viewer=current_principal(), **args)
        return {
            "items": items,
            "meta": page_meta(page=args["page"], page_size=args["page_size"], total=total),
        }

    @blp.auth()
    @blp.arguments(TaskCreate)
    @blp.response(
        201,
        Task,
        headers={
            **_TASK_HEADERS,
            "Location": {"description": "URL of the new task", "schema": {"type": "string"}},
        },
    )
    @blp.errors(400, 409, 415, 422)
    @blp.doc(
        operationId="createTask",
        responses={
            201: {
                "links": links(
                    "getTask",
                    "updateTask",
                    "replaceTask",
                    "deleteTask",
                    task_id="$response.body#/id",
                )
            }
        },
    )
    @idempotent("createTask", TaskModel, headers=_created_headers)
    def post(self, values: dict[str, Any]) -> tuple[Any, dict[str, str]]:
        """Create a task (send an Idempotency-Key to make retries safe)."""
        task = service.create_task(
            db.session(), owner_id=current_principal().user_id, values=values
        )
        return task, _created_headers(task)


@blp.route(TASK_ID)
class TaskItem(MethodView):
    """One of your tasks."""

    @blp.auth()
    @conditional
    @blp.response(200, Task, headers=_TASK_HEADERS)
    @blp.alt_response(304, **NOT_MODIFIED_DOC)
    @blp.errors(404)
    @blp.doc(operationId="getTask")
    def get(self, task_id: int) -> tuple[Any, dict[str, str]]:
        """Get a task."""
        task = service.get_task(db.session(), owner_id=current_principal().user_id, task_id=task_id)
        return task, _etag_headers(task)

    @blp.auth()
    @blp.arguments(TaskReplace)
    @blp.arguments(IfMatchHeader, location="headers", as_kwargs=True, error_status_code=412)
    @blp.response(200, Task, headers=_TASK_HEADERS)
    @blp.errors(400, 404, 412, 415, 422)
    @blp.doc(operationId="replaceTask")
    def put(
        self, values: dict[str, Any], task_id: int, if_match: frozenset[int] | None
    ) -> tuple[Any, dict[str, str]]:
        """Replace a task (omitted optional fields are reset)."""
        task = service.replace_task(
            db.session(),
            owner_id=current_principal().user_id,
            task_id=task_id,
            values=values,
            expected_versions=if_match,
        )
        return task, _etag_headers(task)

    @blp.auth()
    @blp.arguments(TaskUpdate)
    @blp.arguments(IfMatchHeader, location="headers", as_kwargs=True, error_status_code=412)
    @blp.response(200, Task, headers=_TASK_HEADERS)
    @blp.errors(400, 404, 412, 415, 422)
    @blp.doc(operationId="updateTask")
    def patch(
        self, changes: dict[str, Any], task_id: int, if_match: frozenset[int] | None
    ) -> tuple[Any, dict[str, str]]:
        """Change some fields of a task."""
        task = service.update_task(
            db.session(),
            owner_id=current_principal().user_id,
            task_id=task_id,
            changes=changes,
            expected_versions=if_match,
        )
        return task, _etag_headers(task)

    @blp.auth()
    @blp.arguments(IfMatchHeader, location="headers", as_kwargs=True, error_status_code=412)
    @blp.response(204)
    @blp.errors(404, 412)
    @blp.doc(operationId="deleteTask")
    def delete(self, task_id: int, if_match: frozenset[int] | None) -> None:
        """Delete a task."""
        service.delete_task(
            db.session(),
            owner_id=current_principal().user_id,
            task_id=task_id,
            expected_versions=if_match,
        )
