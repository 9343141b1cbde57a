"""Celery tasks of jobs: start a created job, run it, and the sweeps that keep none stranded."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from sqlalchemy.orm import Session

from app.config import current_settings
from app.core.database import utcnow
from app.events.models import OutboxEvent
from app.events.registry import FollowUp, consumer
from app.events.service import JOB_CREATED
from app.extensions import db
from app.jobs.models import Job, JobState
from app.jobs.runner import run_job
from app.jobs.sweep import RUN_TASK, purge_files, requeue_stale

logger = logging.getLogger(__name__)


@consumer("jobs.start", [JOB_CREATED])
def start_job(session: Session, event: OutboxEvent) -> list[FollowUp]:
    """Enqueue the run of a newly created job (unless it was cancelled meanwhile)."""
    job = session.get(Job, event.payload["job_id"])
    if job is None or job.state != JobState.QUEUED.value:
        return []
    job.enqueued_at = utcnow()
    return [FollowUp(RUN_TASK, (job.id,))]


@shared_task(name=RUN_TASK)
def run(job_id: int) -> str:
    """Run job ``job_id`` (a duplicate message finds it claimed and does nothing)."""
    return run_job(job_id)


@shared_task(name="jobs.sweep_stale")
def sweep_stale() -> int:
    """Enqueue again the jobs whose message or worker was lost; run by beat."""
    settings = current_settings()
    sent = requeue_stale(
        db.session(),
        now=utcnow(),
        grace=timedelta(seconds=settings.JOB_QUEUED_GRACE_SECONDS),
        batch=settings.JOB_SWEEP_BATCH,
    )
    if sent:
        logger.info("stale jobs enqueued again", extra={"job_ids": sent})
    return len(sent)


@shared_task(name="jobs.purge_files")
def purge_old_files() -> int:
    """Delete the files of jobs finished longer ago than JOB_RESULT_RETENTION_SECONDS."""
    settings = current_settings()
    cutoff = utcnow() - timedelta(seconds=settings.JOB_RESULT_RETENTION_SECONDS)
    deleted = purge_files(db.session(), finished_before=cutoff, batch=settings.CLEANUP_BATCH)
    if deleted:
        logger.info("old job files deleted", extra={"count": deleted})
    return deleted
