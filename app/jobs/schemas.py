"""Request and response schemas of the jobs API, named by direction."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import url_for
from flask_smorest.fields import Upload
from marshmallow import validate
from werkzeug.datastructures import FileStorage

from app.core.schemas import PageArgs, StrictSchema, page_schema
from app.jobs.models import JobState, JobType
from app.jobs.params import (
    COMPLETE_OVERDUE,
    PARAMS,
    SET_STATUS,
    ExportParams,
    TaskFilter,
    normalized_params,
)
from app.tasks.models import TaskStatus

JSON_TYPES = (JobType.TASKS_EXPORT.value, JobType.TASKS_BULK_UPDATE.value)
PARAMS_DESCRIPTION = (
    "Depends on `type`. tasks.export: `format` (csv or json, default csv) and the task list's "
    "filters `status`, `priority`, `tag`, `due_after`, `due_before`. tasks.bulk_update: "
    '`{"action": "complete_overdue"}`, or `{"action": "set_status", "status": "done"}`; both '
    "take an optional `filter` with the same filters."
)


class JobCreate(StrictSchema):
    """A job to run (``application/json``); tasks.import is a multipart upload instead."""

    type = ma.fields.String(
        required=True,
        validate=validate.OneOf([job_type.value for job_type in JobType]),
        metadata={"description": "What the job does", "example": JobType.TASKS_EXPORT.value},
    )
    params = ma.fields.Dict(
        keys=ma.fields.String(),
        load_default=dict,
        metadata={"description": PARAMS_DESCRIPTION, "example": {"format": "csv"}},
    )

    @ma.validates_schema
    def _params_fit_the_type(self, data: dict[str, Any], **_kwargs: Any) -> None:
        job_type = data.get("type")
        if job_type == JobType.TASKS_IMPORT.value:
            raise ma.ValidationError(
                "tasks.import takes a multipart/form-data upload with fields type and file.",
                "type",
            )
        if job_type in PARAMS:
            try:
                normalized_params(job_type, data.get("params") or {})
            except ma.ValidationError as error:
                raise ma.ValidationError(error.messages, "params") from None

    @ma.post_load
    def _normalize(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        data["params"] = normalized_params(data["type"], data["params"])
        return data


def _job_type(job_type: JobType) -> ma.fields.String:
    return ma.fields.String(
        required=True, validate=validate.OneOf([job_type.value]), metadata={"example": job_type}
    )


class CompleteOverdueParams(StrictSchema):
    """``tasks.bulk_update`` completing every overdue task that matches ``filter``."""

    action = ma.fields.String(
        required=True,
        validate=validate.OneOf([COMPLETE_OVERDUE]),
        metadata={"example": COMPLETE_OVERDUE},
    )
    filter = ma.fields.Nested(TaskFilter, metadata={"example": {"tag": "q1"}})


class SetStatusParams(StrictSchema):
    """``tasks.bulk_update`` giving every task that matches ``filter`` one status."""

    action = ma.fields.String(
        required=True, validate=validate.OneOf([SET_STATUS]), metadata={"example": SET_STATUS}
    )
    status = ma.fields.Enum(TaskStatus, by_value=True, required=True, metadata={"example": "done"})
    filter = ma.fields.Nested(TaskFilter, metadata={"example": {"tag": "q1"}})


class ExportJobCreate(StrictSchema):
    """A ``tasks.export`` job (document only: ``JobCreate`` loads every JSON job)."""

    type = _job_type(JobType.TASKS_EXPORT)
    params = ma.fields.Nested(ExportParams, metadata={"example": {"format": "json"}})


class CompleteOverdueJobCreate(StrictSchema):
    """A ``tasks.bulk_update`` job completing overdue tasks (document only)."""

    type = _job_type(JobType.TASKS_BULK_UPDATE)
    params = ma.fields.Nested(
        CompleteOverdueParams, required=True, metadata={"example": {"action": COMPLETE_OVERDUE}}
    )


class SetStatusJobCreate(StrictSchema):
    """A ``tasks.bulk_update`` job setting a status (document only)."""

    type = _job_type(JobType.TASKS_BULK_UPDATE)
    params = ma.fields.Nested(
        SetStatusParams,
        required=True,
        metadata={"example": {"action": SET_STATUS, "status": "done"}},
    )


# The params allowed depend on the type: the document says so with a oneOf.
JobCreate.OPENAPI_RULES = {"oneOf": [ExportJobCreate, CompleteOverdueJobCreate, SetStatusJobCreate]}


def _is_file(value: Any) -> None:
    if not isinstance(value, FileStorage):
        raise ma.ValidationError("Must be a file.")


class ImportUpload(StrictSchema):
    """A CSV file of tasks to create (``multipart/form-data``)."""

    type = ma.fields.String(
        required=True,
        validate=validate.Equal(JobType.TASKS_IMPORT.value),
        metadata={"description": "Always tasks.import", "example": JobType.TASKS_IMPORT.value},
    )
    file = Upload(
        required=True,
        validate=_is_file,
        metadata={
            "description": (
                "UTF-8 CSV whose header row names some of title (required), description, "
                "status, priority, due_at (ISO 8601 with a time zone), tags (separated by ;). "
                "An export's extra columns are ignored, so an exported file imports as is."
            ),
            "example": "title,status,due_at,tags\nWrite the report,todo,2030-01-31T17:00:00Z,work",
        },
    )


class Job(ma.Schema):
    """A job as the API returns it."""

    id = ma.fields.Integer(required=True, metadata={"example": 12})
    owner_id = ma.fields.Integer(required=True, metadata={"example": 7})
    type = ma.fields.String(
        required=True,
        validate=validate.OneOf([job_type.value for job_type in JobType]),
        metadata={"example": JobType.TASKS_EXPORT.value},
    )
    params = ma.fields.Dict(required=True, metadata={"example": {"format": "csv"}})
    state = ma.fields.String(
        required=True,
        validate=validate.OneOf([state.value for state in JobState]),
        metadata={
            "description": "queued, running, then succeeded, failed or cancelled",
            "example": "running",
        },
    )
    progress = ma.fields.Integer(
        required=True, metadata={"description": "Percent done, 0 to 100", "example": 40}
    )
    attempts = ma.fields.Integer(
        required=True,
        metadata={"description": "Runs started (a run cut short is retried)", "example": 1},
    )
    error = ma.fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "Why the job failed; null otherwise", "example": None},
    )
    result = ma.fields.Dict(
        allow_none=True,
        required=True,
        metadata={
            "description": (
                "Summary so far: counts, and for tasks.import up to 100 per-row errors "
                "(`row` as a spreadsheet numbers it, the header being row 1)"
            ),
            "example": {
                "rows": 3,
                "created": 2,
                "failed": 1,
                "errors": [{"row": 3, "errors": {"title": ["Missing data for required field."]}}],
            },
        },
    )
    result_url = ma.fields.Method(
        "_result_url",
        metadata={
            "type": "string",
            "nullable": True,
            "description": "Where to download the result file, once there is one",
            "example": "/api/v1/jobs/12/result",
        },
    )
    created_at = ma.fields.AwareDateTime(
        required=True, metadata={"example": "2030-01-02T09:30:00+00:00"}
    )
    started_at = ma.fields.AwareDateTime(
        allow_none=True, required=True, metadata={"example": "2030-01-02T09:30:01+00:00"}
    )
    finished_at = ma.fields.AwareDateTime(
        allow_none=True, required=True, metadata={"example": None}
    )
    cancel_requested_at = ma.fields.AwareDateTime(
        allow_none=True,
        required=True,
        metadata={
            "description": "When cancelling was asked; a running job stops at its next step",
            "example": None,
        },
    )

    def _result_url(self, job: Any) -> str | None:
        if job.state != JobState.SUCCEEDED.value or job.type != JobType.TASKS_EXPORT.value:
            return None
        return str(url_for("jobs.JobResult", job_id=job.id))


JobPage = page_schema(Job, "JobPage")


class JobQueryArgs(PageArgs):
    """Filters and page of the job list."""

    state = ma.fields.String(
        validate=validate.OneOf([state.value for state in JobState]),
        metadata={"description": "Only jobs in this state"},
    )
    type = ma.fields.String(
        validate=validate.OneOf([job_type.value for job_type in JobType]),
        metadata={"description": "Only jobs of this type"},
    )


class ExportedTask(ma.Schema):
    """A task in a JSON export (the CSV export has the same columns)."""

    id = ma.fields.Integer(required=True, metadata={"example": 42})
    title = ma.fields.String(required=True, metadata={"example": "Write the report"})
    description = ma.fields.String(allow_none=True, required=True, metadata={"example": None})
    status = ma.fields.String(required=True, metadata={"example": "todo"})
    priority = ma.fields.String(required=True, metadata={"example": "high"})
    due_at = ma.fields.AwareDateTime(
        allow_none=True, required=True, metadata={"example": "2030-01-31T17:00:00+00:00"}
    )
    tags = ma.fields.List(ma.fields.String(), required=True, metadata={"example": ["work"]})
    created_at = ma.fields.AwareDateTime(
        required=True, metadata={"example": "2030-01-02T09:30:00+00:00"}
    )
    updated_at = ma.fields.AwareDateTime(
        required=True, metadata={"example": "2030-01-03T10:00:00+00:00"}
    )
    completed_at = ma.fields.AwareDateTime(
        allow_none=True, required=True, metadata={"example": None}
    )


class TaskExport(ma.Schema):
    """The file of a tasks.export job in JSON format."""

    tasks = ma.fields.List(ma.fields.Nested(ExportedTask), required=True)
