"""``tasks.import``: create a task for every valid row of an uploaded CSV file.

Each row is checked with the API's own rules (``TaskCreate``) and created through the tasks
service, so events and defaults are the same as for ``POST /api/v1/tasks``. Rows are handled in
batches; a batch's tasks and the job's summary commit together, so a run interrupted by a dead
worker resumes after the last committed batch and never creates a row twice. Rows are numbered
as a spreadsheet shows them: the header is row 1.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import marshmallow as ma
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import current_settings
from app.jobs.handlers.base import JobError, Progress, ResultFile, percent
from app.jobs.handlers.tasks_csv import (
    IMPORT_COLUMNS,
    TAG_SEPARATOR,
    decode,
    header_problems,
    unescape_cell,
)
from app.jobs.models import FileKind, Job, JobFile
from app.tasks import service as tasks_service
from app.tasks.schemas import TaskCreate

MAX_ROW_ERRORS = 100  # kept in the summary; the count of failed rows is always exact
_OPTIONAL_EMPTY = {"description": None, "due_at": None}  # an empty cell means "none"


def import_tasks(session: Session, job: Job, progress: Progress) -> ResultFile | None:
    """Create the file's valid rows as tasks of the job's owner; report the others."""
    text = decode(_input_data(session, job))
    problems = header_problems(text)
    if problems:
        raise JobError(" ".join(problems))
    batch = current_settings().JOB_BATCH_SIZE
    try:
        total = sum(1 for _, cells in _rows(text)[1] if cells)
        summary: dict[str, Any] = job.result or {
            "rows": total,
            "last_row": 1,  # the resume point: rows up to here are done
            "created": 0,
            "failed": 0,
            "errors": [],
            "errors_truncated": False,
        }
        schema = TaskCreate()
        header, rows = _rows(text)
        in_batch = 0
        for row_number, cells in rows:
            if not cells or row_number <= summary["last_row"]:
                continue  # a blank line, or done by an earlier, interrupted run
            values, errors = _parse(schema, header, cells)
            if errors:
                summary["failed"] += 1
                if len(summary["errors"]) < MAX_ROW_ERRORS:
                    summary["errors"].append({"row": row_number, "errors": errors})
                else:
                    summary["errors_truncated"] = True
            else:
                tasks_service.create_task(session, owner_id=job.owner_id, values=values)
                summary["created"] += 1
            summary["last_row"] = row_number
            in_batch += 1
            if in_batch == batch:
                in_batch = 0
                job.result = dict(summary)  # a new dict: the JSON column sees the change
                progress(percent(summary["created"] + summary["failed"], total))
    except csv.Error as error:
        raise JobError(f"The file is not valid CSV: {error}.") from None
    job.result = dict(summary)
    return None


def _input_data(session: Session, job: Job) -> bytes:
    data = session.scalar(
        select(JobFile.data).where(JobFile.job_id == job.id, JobFile.kind == FileKind.INPUT.value)
    )
    if data is None:
        raise JobError("The uploaded file is no longer available; upload it again.")
    return data


def _rows(text: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header (lower-case names) and the (row number, cells) of each data row."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [cell.strip().lower() for cell in next(reader, [])]
    return header, enumerate(reader, start=2)


def _parse(
    schema: TaskCreate, header: list[str], cells: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The row's values as ``TaskCreate`` loads them, or the errors by column."""
    if len(cells) > len(header):
        return {}, {"_row": [f"Has {len(cells)} cells but the header names {len(header)}."]}
    raw: dict[str, Any] = {}
    for name, cell in zip(header, cells, strict=False):
        if name not in IMPORT_COLUMNS:
            continue  # the export's read-only columns (id, created_at, ...)
        value = unescape_cell(cell if name == "description" else cell.strip())
        if name == "tags":
            raw[name] = [
                tag for tag in (part.strip() for part in value.split(TAG_SEPARATOR)) if tag
            ]
        elif value:
            raw[name] = value
        elif name in _OPTIONAL_EMPTY:
            raw[name] = _OPTIONAL_EMPTY[name]
    try:
        values: dict[str, Any] = schema.load(raw)
    except ma.ValidationError as error:
        messages = error.messages
        return {}, messages if isinstance(messages, dict) else {"_row": messages}
    return values, {}
