"""The rules of jobs as their owners see them: create, list, read, download, cancel.

Every function is one transaction, scoped by owner in the query itself: another user's job is
simply not found (404). Creating a job records ``job.created`` in the same transaction; its
consumer enqueues the run once that commit is published, so a job is never lost to a broker that
was down (the outbox and job sweeps catch up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session, undefer

from app.config import current_settings
from app.core.database import utcnow
from app.core.errors import AppError, Conflict, NotFound, ValidationFailed
from app.events.service import JOB_CANCELLED, JOB_CREATED, record
from app.jobs.handlers.tasks_csv import decode, header_problems
from app.jobs.models import FINAL_STATES, FileKind, Job, JobFile, JobState, JobType


class UploadTooLarge(AppError):
    """The uploaded file is over ``JOB_MAX_UPLOAD_BYTES`` (413)."""

    status, code = 413, "payload_too_large"


class ResultGone(AppError):
    """The result file was deleted after ``JOB_RESULT_RETENTION_SECONDS`` (410)."""

    status, code = 410, "gone"


@dataclass(frozen=True)
class Upload:
    """A file sent with a job."""

    filename: str
    content_type: str
    data: bytes


def create_job(
    session: Session,
    *,
    owner_id: int,
    job_type: str,
    params: Mapping[str, Any],
    upload: Upload | None = None,
) -> Job:
    """Queue a job of ``job_type`` (params already validated); records ``job.created``."""
    if job_type == JobType.TASKS_IMPORT.value:
        if upload is None:
            raise ValidationFailed(errors={"form": {"file": ["Missing data for required field."]}})
        _check_import_file(upload)
    job = Job(
        owner_id=owner_id,
        type=job_type,
        params=dict(params),
        state=JobState.QUEUED.value,
        created_at=utcnow(),
    )
    session.add(job)
    session.flush()
    if upload is not None:
        session.add(
            JobFile(
                job_id=job.id,
                kind=FileKind.INPUT.value,
                filename=upload.filename[:255],
                content_type=upload.content_type[:127],
                size=len(upload.data),
                data=upload.data,
            )
        )
    record(session, JOB_CREATED, {"job_id": job.id, "owner_id": owner_id, "type": job_type})
    session.commit()
    return job


def _check_import_file(upload: Upload) -> None:
    limit = current_settings().JOB_MAX_UPLOAD_BYTES
    if len(upload.data) > limit:
        raise UploadTooLarge(f"The file is larger than {limit:,} bytes; split it.")
    try:
        text = decode(upload.data)
    except UnicodeDecodeError as error:
        raise ValidationFailed(
            "The file must be UTF-8 text.",
            errors={"form": {"file": [f"Not UTF-8 (byte {error.start})."]}},
        ) from None
    problems = header_problems(text)
    if problems:
        raise ValidationFailed(
            "The file's header row is not usable.", errors={"form": {"file": problems}}
        )


def list_jobs(
    session: Session,
    *,
    owner_id: int,
    page: int,
    page_size: int,
    state: str | None = None,
    job_type: str | None = None,
) -> tuple[Sequence[Job], int]:
    """One page of the owner's jobs, newest first, and how many match in all."""
    conditions = [Job.owner_id == owner_id]
    if state is not None:
        conditions.append(Job.state == state)
    if job_type is not None:
        conditions.append(Job.type == job_type)
    total = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    offset = (page - 1) * page_size
    if offset >= total:
        return [], total
    query = (
        select(Job)
        .where(*conditions)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(page_size)
        .offset(offset)
    )
    return session.scalars(query).all(), total


def get_job(session: Session, *, owner_id: int, job_id: int) -> Job:
    """The job ``job_id`` of ``owner_id``; ``NotFound`` if it is missing or someone else's."""
    job = session.scalars(_owned(owner_id, job_id)).one_or_none()
    if job is None:
        raise NotFound("Job not found.")
    return job


def get_result_file(session: Session, *, owner_id: int, job_id: int) -> JobFile:
    """The result file of a succeeded job (``Conflict`` before that, ``ResultGone`` after the
    retention period, ``NotFound`` for job types that make no file)."""
    job = get_job(session, owner_id=owner_id, job_id=job_id)
    if job.state != JobState.SUCCEEDED.value:
        raise Conflict(f"The job is {job.state}; its result exists once it has succeeded.")
    result_file = session.scalars(
        select(JobFile)
        .where(JobFile.job_id == job.id, JobFile.kind == FileKind.RESULT.value)
        .options(undefer(JobFile.data))
    ).one_or_none()
    if result_file is not None:
        return result_file
    if job.type == JobType.TASKS_EXPORT.value:
        retention = timedelta(seconds=current_settings().JOB_RESULT_RETENTION_SECONDS)
        raise ResultGone(f"The result was deleted {retention.days} days after the job finished.")
    raise NotFound("This job type makes no file; its summary is the job's `result`.")


def cancel_job(session: Session, *, owner_id: int, job_id: int) -> Job:
    """Cancel a queued job now, or ask a running one to stop at its next progress report.

    Cancelling a cancelled job changes nothing; a succeeded or failed one is a ``Conflict``.
    """
    job = session.scalars(_owned(owner_id, job_id).with_for_update()).one_or_none()
    if job is None:
        raise NotFound("Job not found.")
    if job.state == JobState.CANCELLED.value:
        return job
    if job.state in FINAL_STATES:
        raise Conflict(f"The job has already {job.state}; there is nothing to cancel.")
    now = utcnow()
    if job.state == JobState.QUEUED.value:
        job.state = JobState.CANCELLED.value
        job.finished_at = now
        job.cancel_requested_at = now
        session.flush()
        session.execute(
            delete(JobFile).where(JobFile.job_id == job.id),
            execution_options={"synchronize_session": False},
        )
        record(
            session,
            JOB_CANCELLED,
            {
                "job_id": job.id,
                "owner_id": owner_id,
                "type": job.type,
                "state": job.state,
                "finished_at": now.isoformat(),
            },
        )
    elif job.cancel_requested_at is None:
        job.cancel_requested_at = now
    session.commit()
    return job


def _owned(owner_id: int, job_id: int) -> Select[Job]:
    return select(Job).where(Job.id == job_id, Job.owner_id == owner_id)
