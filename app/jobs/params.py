"""The parameters of each job type, checked when the job is created and again when it runs."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from app.core.schemas import StrictSchema
from app.jobs.models import JobType
from app.tasks.models import TaskPriority, TaskStatus
from app.tasks.schemas import TAG_MAX, TrimmedText

EXPORT_FORMATS = ("csv", "json")
COMPLETE_OVERDUE = "complete_overdue"
SET_STATUS = "set_status"
BULK_ACTIONS = (COMPLETE_OVERDUE, SET_STATUS)


class TaskFilter(StrictSchema):
    """Which of the owner's tasks a job works on (all of them by default)."""

    status = ma.fields.Enum(TaskStatus, by_value=True, metadata={"example": "todo"})
    priority = ma.fields.Enum(TaskPriority, by_value=True, metadata={"example": "high"})
    tag = TrimmedText(
        validate=validate.Length(min=1, max=TAG_MAX),
        metadata={"description": "Only tasks carrying this tag", "example": "work"},
    )
    due_after = ma.fields.AwareDateTime(
        metadata={"description": "Only tasks due at or after", "example": "2030-01-01T00:00:00Z"}
    )
    due_before = ma.fields.AwareDateTime(
        metadata={"description": "Only tasks due before", "example": "2030-02-01T00:00:00Z"}
    )


class ExportParams(TaskFilter):
    """``tasks.export``: the file format, and the task list's filters."""

    format = ma.fields.String(
        load_default="csv",
        validate=validate.OneOf(EXPORT_FORMATS),
        metadata={"description": "csv (the default) or json", "example": "csv"},
    )


class BulkUpdateParams(StrictSchema):
    """``tasks.bulk_update``: an action on every matching task, one event per task changed."""

    action = ma.fields.String(
        required=True,
        validate=validate.OneOf(BULK_ACTIONS),
        metadata={
            "description": (
                "complete_overdue: every task not done whose due_at has passed becomes done; "
                "set_status: every matching task gets `status`"
            ),
            "example": COMPLETE_OVERDUE,
        },
    )
    status = ma.fields.Enum(
        TaskStatus,
        by_value=True,
        metadata={"description": "The new status (set_status only)", "example": "done"},
    )
    filter = ma.fields.Nested(TaskFilter, load_default=dict, metadata={"example": {"tag": "q1"}})

    @ma.validates_schema
    def _status_goes_with_set_status(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("action") == SET_STATUS and "status" not in data:
            raise ma.ValidationError("Required by set_status.", "status")
        if data.get("action") == COMPLETE_OVERDUE and "status" in data:
            raise ma.ValidationError("Only set_status takes a status.", "status")


class ImportParams(StrictSchema):
    """``tasks.import`` takes no parameters: the uploaded file is its input."""


PARAMS: dict[str, type[ma.Schema]] = {
    JobType.TASKS_EXPORT.value: ExportParams,
    JobType.TASKS_BULK_UPDATE.value: BulkUpdateParams,
    JobType.TASKS_IMPORT.value: ImportParams,
}


def normalized_params(job_type: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` validated and turned back into JSON values (raises ``ValidationError``)."""
    schema = PARAMS[job_type]()
    dumped: dict[str, Any] = schema.dump(schema.load(params))
    return dumped
