"""Celery tasks of the tasks feature: reminders for tasks coming due.

A reminder is an email queued with the dedupe key ``reminder:<task id>:<due_at>``: a second beat
run (or a redelivered message) finds the key and queues nothing, while moving a task's due date
makes a new key, so the reminder is armed again for the new date. A reminder not sent yet is
withdrawn when its task is done, deleted or moved (``app.tasks.service``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from celery import shared_task
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from app.config import current_settings
from app.core.database import utcnow
from app.core.messaging import send_task
from app.extensions import db
from app.notifications.models import EmailMessage
from app.notifications.service import SEND_EMAIL_TASK, queue_email
from app.tasks.models import Task, TaskStatus
from app.tasks.service import reminder_key
from app.users.models import User

logger = logging.getLogger(__name__)

# Bounds one run's work: batches of TASK_REMINDER_BATCH tasks, each committed on its own.
MAX_BATCHES_PER_RUN = 100


def queue_due_reminders(
    session: Session, *, now: datetime, lead: timedelta, batch: int
) -> list[uuid.UUID]:
    """Queue a reminder for every open task due in ``(now, now + lead]``; return the new emails.

    Tasks are read in ``(due_at, id)`` order, ``batch`` at a time, through the partial index of
    open tasks with a due date (``ix_tasks_open_due``): the cost follows the tasks coming due,
    not the size of the table. Each batch commits, so a crash loses at most one batch's work,
    and the next run redoes it (the dedupe keys make that harmless).
    """
    queued: list[uuid.UUID] = []
    after: tuple[datetime, int] | None = None
    for _ in range(MAX_BATCHES_PER_RUN):
        query = (
            select(Task.id, Task.title, Task.due_at, User.email, User.full_name)
            .join(User, User.id == Task.owner_id)
            .where(
                Task.status != TaskStatus.DONE.value,
                Task.due_at.is_not(None),
                Task.due_at > now,
                Task.due_at <= now + lead,
                User.is_active.is_(True),
            )
            .order_by(Task.due_at, Task.id)
            .limit(batch)
        )
        if after is not None:
            query = query.where(tuple_(Task.due_at, Task.id) > tuple_(*after))
        rows = session.execute(query).all()
        if not rows:
            break
        keys = {row.id: reminder_key(row.id, row.due_at) for row in rows}
        already = set(
            session.scalars(
                select(EmailMessage.dedupe_key).where(EmailMessage.dedupe_key.in_(keys.values()))
            )
        )
        for row in rows:
            if keys[row.id] in already:
                continue
            message = queue_email(
                session,
                to=row.email,
                template="task_due",
                context={
                    "full_name": row.full_name,
                    "task_id": row.id,
                    "title": row.title,
                    "due_at": row.due_at.astimezone(UTC).isoformat(),
                    "due_at_display": row.due_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                },
                dedupe_key=keys[row.id],
            )
            if message is not None:
                queued.append(message.id)
        session.commit()
        if len(rows) < batch:
            break
        after = (rows[-1].due_at, rows[-1].id)
    return queued


@shared_task(name="tasks.send_due_reminders")
def send_due_reminders() -> int:
    """Email each owner once about their open tasks coming due (run by beat)."""
    settings = current_settings()
    queued = queue_due_reminders(
        db.session(),
        now=utcnow(),
        lead=timedelta(seconds=settings.TASK_REMINDER_LEAD_SECONDS),
        batch=settings.TASK_REMINDER_BATCH,
    )
    for message_id in queued:
        try:
            send_task(SEND_EMAIL_TASK, (str(message_id),))
        except Exception:
            # The emails are committed: notifications.sweep_due_emails sends them later.
            logger.warning("could not enqueue reminders; the email sweep will send them")
            break
    if queued:
        logger.info("due-task reminders queued", extra={"count": len(queued)})
    return len(queued)
