"""The safety nets run by beat: re-enqueue jobs nobody is running, delete old job files."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.core.messaging import send_task
from app.core.queries import delete_in_batches
from app.jobs.models import Job, JobFile, JobState

logger = logging.getLogger(__name__)

RUN_TASK = "jobs.run"


def requeue_stale(session: Session, *, now: datetime, grace: timedelta, batch: int) -> list[int]:
    """Send ``jobs.run`` again for up to ``batch`` jobs nobody is running; returns their ids.

    That is a queued job whose last enqueue is older than ``grace`` (its message was lost, or the
    broker was down), and a running job whose lease expired (its worker died). The claim makes a
    duplicate message harmless; ``enqueued_at`` keeps one job from being re-sent every sweep.
    """
    last_sent = func.coalesce(Job.enqueued_at, Job.created_at)
    stale = session.scalars(
        select(Job)
        .where(
            last_sent <= now - grace,
            or_(
                Job.state == JobState.QUEUED.value,
                and_(Job.state == JobState.RUNNING.value, Job.lease_until < now),
            ),
        )
        .order_by(Job.id)
        .limit(batch)
        .with_for_update(skip_locked=True)  # several beat sweeps never send the same job twice
    ).all()
    sent: list[int] = []
    try:
        for job in stale:
            try:
                send_task(RUN_TASK, (job.id,))
            except Exception:
                logger.warning("could not enqueue stale jobs; the next sweep retries")
                break
            job.enqueued_at = now
            sent.append(job.id)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return sent


def purge_files(session: Session, *, finished_before: datetime, batch: int) -> int:
    """Delete the files of jobs finished before ``finished_before``, ``batch`` per statement."""
    old_files = (
        select(JobFile.id)
        .join(Job, Job.id == JobFile.job_id)
        .where(Job.finished_at < finished_before)
    )
    return delete_in_batches(session, model=JobFile, chosen=old_files, batch=batch)
