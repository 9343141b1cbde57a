"""``tasks.export``: the owner's tasks (optionally filtered) as a CSV or JSON file.

Rows are streamed from one query (``yield_per``: one statement, so one consistent snapshot, and
bounded memory) into a spooled temporary file, which stays in memory up to a few MiB and goes to
disk beyond; a file larger than ``JOB_MAX_RESULT_BYTES`` fails the job instead of the worker.
"""

from __future__ import annotations

import csv
import io
import json
from tempfile import SpooledTemporaryFile
from typing import IO, Any

from sqlalchemy.orm import Session

from app.config import current_settings
from app.jobs.handlers.base import JobError, Progress, ResultFile, load_params, percent
from app.jobs.handlers.tasks_csv import EXPORT_COLUMNS, TAG_SEPARATOR, escape_cell
from app.jobs.models import Job
from app.jobs.params import ExportParams
from app.tasks import service as tasks_service

SPOOL_BYTES = 8 * 1024 * 1024
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def export_tasks(session: Session, job: Job, progress: Progress) -> ResultFile:
    """Write the owner's matching tasks, ordered by id, to a file."""
    params = load_params(ExportParams(), job.params)
    settings = current_settings()
    batch, limit = settings.JOB_BATCH_SIZE, settings.JOB_MAX_RESULT_BYTES
    file_format: str = params.pop("format")
    exported = 0
    # A session of its own for the stream: progress() commits the job's session, which would
    # close a server-side cursor opened there.
    with (
        Session(bind=session.get_bind()) as reader,
        SpooledTemporaryFile(max_size=SPOOL_BYTES) as buffer,
    ):
        total, rows = tasks_service.stream_tasks(
            reader, owner_id=job.owner_id, batch=batch, **params
        )
        text = io.TextIOWrapper(buffer, encoding="utf-8", newline="")
        writer = _CsvWriter(text) if file_format == "csv" else _JsonWriter(text)
        for row in rows:
            writer.write(row)
            exported += 1
            if exported % batch == 0:
                _check_size(text, buffer, limit)
                progress(percent(exported, total))
        writer.close()
        _check_size(text, buffer, limit)
        buffer.seek(0)
        data = buffer.read()
        text.detach()  # the spooled file is closed by its own context manager
    job.result = {"format": file_format, "tasks": exported, "bytes": len(data)}
    return ResultFile(
        filename=f"tasks-{job.id}.{file_format}",
        content_type=CONTENT_TYPES[file_format],
        data=data,
    )


def _check_size(text: io.TextIOWrapper, buffer: IO[bytes], limit: int) -> None:
    text.flush()
    if buffer.tell() > limit:
        raise JobError(
            f"The export is larger than {limit:,} bytes; narrow it with filters "
            "(status, priority, tag, due_after, due_before)."
        )


class _CsvWriter:
    def __init__(self, text: IO[str]) -> None:
        self._writer = csv.writer(text)
        self._writer.writerow(EXPORT_COLUMNS)

    def write(self, row: dict[str, Any]) -> None:
        cells = []
        for column in EXPORT_COLUMNS:
            value = row[column]
            if column == "tags":
                value = TAG_SEPARATOR.join(value)
            cells.append("" if value is None else escape_cell(str(value)))
        self._writer.writerow(cells)

    def close(self) -> None:
        return


class _JsonWriter:
    """``{"tasks": [...]}`` written one task at a time."""

    def __init__(self, text: IO[str]) -> None:
        self._text = text
        self._first = True
        text.write('{"tasks": [')

    def write(self, row: dict[str, Any]) -> None:
        self._text.write("\n" if self._first else ",\n")
        self._text.write(json.dumps(row, ensure_ascii=False))
        self._first = False

    def close(self) -> None:
        self._text.write("]}\n" if self._first else "\n]}\n")
