"""Running a job: claim its lease, run its handler with a progress callback, record the outcome.

The lease is the job's ``(state = running, attempts)`` pair plus ``lease_until``: a claim bumps
``attempts``, and every later write of the run (each batch commit, the outcome) is an UPDATE
conditional on that attempt number. A worker that died or stalled past its lease loses the job
to the next claim (by a redelivered message or the sweep), and its late writes then match no row,
so two runs of one job never both commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import and_, delete, or_, update
from sqlalchemy.orm import Session

from app.config import Settings, current_settings
from app.core.database import utcnow
from app.core.requests import current_request_id
from app.events.service import JOB_CANCELLED, JOB_FAILED, JOB_SUCCEEDED, record
from app.extensions import db
from app.jobs.handlers import HANDLERS
from app.jobs.handlers.base import JobCancelled, JobError, ResultFile
from app.jobs.models import FileKind, Job, JobFile, JobState

logger = logging.getLogger(__name__)

OUTCOME_EVENTS = {
    JobState.SUCCEEDED: JOB_SUCCEEDED,
    JobState.FAILED: JOB_FAILED,
    JobState.CANCELLED: JOB_CANCELLED,
}


class LeaseLost(Exception):
    """Another run holds the job now (this one stalled past its lease); stop without writing."""


class BatchSession(Session):
    """A session whose ``commit()`` only flushes.

    Services commit once per call; a job calls them hundreds of times per batch. In this session
    their commits are deferred to the next progress report (``commit_batch``), so each batch is
    one transaction: it commits or rolls back whole, together with the job's resume point.
    """

    def commit(self) -> None:
        """Flush only; the batch commits at the next progress report."""
        self.flush()

    def commit_batch(self) -> None:
        """Really commit."""
        super().commit()


@dataclass(frozen=True)
class Fence:
    """Which run of which job: every write of the run is conditional on it."""

    job_id: int
    attempt: int

    def where(self) -> Any:
        """The condition "this run still holds the job"."""
        return and_(
            Job.id == self.job_id,
            Job.state == JobState.RUNNING.value,
            Job.attempts == self.attempt,
        )


@dataclass(frozen=True)
class Claim:
    """A claimed job."""

    fence: Fence
    cancel_requested: bool


def claim_job(session: Session, *, job_id: int, now: datetime, lease: timedelta) -> Claim | None:
    """Take a queued job, or a running one whose lease expired; None if it is not claimable."""
    row = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            or_(
                Job.state == JobState.QUEUED.value,
                and_(Job.state == JobState.RUNNING.value, Job.lease_until < now),
            ),
        )
        .values(
            state=JobState.RUNNING.value,
            attempts=Job.attempts + 1,
            started_at=now,
            heartbeat_at=now,
            lease_until=now + lease,
        )
        .returning(Job.attempts, Job.cancel_requested_at),
        execution_options={"synchronize_session": "fetch"},
    ).one_or_none()
    session.commit()
    if row is None:
        return None
    return Claim(Fence(job_id, row.attempts), cancel_requested=row.cancel_requested_at is not None)


def checkpoint(
    session: BatchSession, fence: Fence, *, lease: timedelta, progress: int | None = None
) -> bool:
    """Commit the batch with a renewed lease (and ``progress``); True if cancel was asked.

    Raises ``LeaseLost`` (after rolling the batch back) when this run no longer holds the job.
    """
    session.flush()
    now = utcnow()
    values: dict[str, Any] = {"heartbeat_at": now, "lease_until": now + lease}
    if progress is not None:
        values["progress"] = max(0, min(100, progress))
    row = session.execute(
        update(Job).where(fence.where()).values(**values).returning(Job.cancel_requested_at),
        execution_options={"synchronize_session": "fetch"},
    ).one_or_none()
    if row is None:
        session.rollback()
        raise LeaseLost(f"job {fence.job_id} attempt {fence.attempt}")
    session.commit_batch()
    return row.cancel_requested_at is not None


def finish_job(
    session: Session,
    fence: Fence,
    *,
    state: JobState,
    error: str | None = None,
    result_file: ResultFile | None = None,
) -> bool:
    """Record the outcome of the run (and its file, and the outcome event); False if the run
    had lost the job. The uploaded input is deleted: nothing needs it any more."""
    now = utcnow()
    values: dict[str, Any] = {
        "state": state.value,
        "error": error,
        "finished_at": now,
        "heartbeat_at": now,
        "lease_until": None,
    }
    if state is JobState.SUCCEEDED:
        values["progress"] = 100
    row = session.execute(
        update(Job)
        .where(fence.where())
        .values(**values)
        .returning(Job.owner_id, Job.type, Job.attempts),
        execution_options={"synchronize_session": "fetch"},
    ).one_or_none()
    if row is None:
        session.rollback()
        return False
    session.execute(
        delete(JobFile).where(JobFile.job_id == fence.job_id, JobFile.kind == FileKind.INPUT.value),
        execution_options={"synchronize_session": False},
    )
    if result_file is not None:
        session.add(
            JobFile(
                job_id=fence.job_id,
                kind=FileKind.RESULT.value,
                filename=result_file.filename,
                content_type=result_file.content_type,
                size=len(result_file.data),
                data=result_file.data,
            )
        )
    payload: dict[str, Any] = {
        "job_id": fence.job_id,
        "owner_id": row.owner_id,
        "type": row.type,
        "state": state.value,
        "finished_at": now.isoformat(),
    }
    if error is not None:
        payload["error"] = error
    record(session, OUTCOME_EVENTS[state], payload)
    session.commit()
    return True


def run_job(job_id: int) -> str:
    """Run job ``job_id`` if it can be claimed; returns what happened (for the task's log)."""
    settings = current_settings()
    lease = timedelta(seconds=settings.JOB_LEASE_SECONDS)
    session = db.session()
    claim = claim_job(session, job_id=job_id, now=utcnow(), lease=lease)
    if claim is None:
        return "not claimable"
    fence = claim.fence
    if fence.attempt > settings.JOB_MAX_ATTEMPTS:
        interrupted = fence.attempt - 1
        given_up = f"The job was interrupted {interrupted} times (its worker stopped); gave up."
        finish_job(session, fence, state=JobState.FAILED, error=given_up)
        return JobState.FAILED.value
    if claim.cancel_requested:
        finish_job(session, fence, state=JobState.CANCELLED)
        return JobState.CANCELLED.value

    work = BatchSession(
        bind=session.get_bind(), expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    state: JobState = JobState.SUCCEEDED
    error: str | None = None
    result_file: ResultFile | None = None
    try:
        result_file = _run_handler(work, fence, lease)
    except LeaseLost:
        work.rollback()
        logger.warning("job lease lost; another run took over", extra={"job_id": job_id})
        return "lease lost"
    except JobCancelled:
        work.rollback()
        state = JobState.CANCELLED
    except JobError as exc:
        work.rollback()
        state, error = JobState.FAILED, exc.message
    except SoftTimeLimitExceeded:
        work.rollback()
        state = JobState.FAILED
        error = _timed_out(settings)
        logger.warning("job timed out", extra={"job_id": job_id})
    except Exception:
        work.rollback()
        state = JobState.FAILED
        error = (
            "The job stopped because of an unexpected error. Try again; if it keeps failing, "
            f"contact support with reference {current_request_id() or job_id}."
        )
        logger.exception("job failed", extra={"job_id": job_id})
    finally:
        work.close()
    if not finish_job(session, fence, state=state, error=error, result_file=result_file):
        return "lease lost"
    logger.info("job finished", extra={"job_id": job_id, "state": state.value})
    return state.value


def _run_handler(work: BatchSession, fence: Fence, lease: timedelta) -> ResultFile | None:
    job = work.get(Job, fence.job_id)
    if job is None:  # deleted with its owner since the claim
        raise LeaseLost(f"job {fence.job_id} is gone")
    handler = HANDLERS.get(job.type)
    if handler is None:
        raise JobError(f"Unknown job type {job.type!r}.")

    def progress(percent: int) -> None:
        if checkpoint(work, fence, lease=lease, progress=percent):
            raise JobCancelled

    result_file = handler(work, job, progress)
    # The last batch; a cancel asked now is too late, the work is done.
    checkpoint(work, fence, lease=lease)
    return result_file


def _timed_out(settings: Settings) -> str:
    return (
        f"The job took longer than {settings.CELERY_TASK_SOFT_TIME_LIMIT_SECONDS} seconds and "
        "was stopped. Split the work (for example with filters, or a smaller file)."
    )
