"""``tasks.bulk_update``: change the status of many tasks, through the tasks service.

Every task changed records ``task.updated`` (and ``task.completed``) exactly as ``PATCH`` does.
Tasks are read in id order, a batch at a time, and locked (``FOR UPDATE``) for the rest of the
batch's transaction, so a concurrent edit waits instead of failing the batch. A task already in
the target state no longer matches, which also makes an interrupted run resume where it stopped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import current_settings
from app.core.database import utcnow
from app.jobs.handlers.base import Progress, ResultFile, load_params, percent
from app.jobs.models import Job
from app.jobs.params import COMPLETE_OVERDUE, BulkUpdateParams
from app.tasks import service as tasks_service
from app.tasks.models import Task, TaskStatus


def bulk_update_tasks(session: Session, job: Job, progress: Progress) -> ResultFile | None:
    """Apply the job's action to every matching task of its owner."""
    params = load_params(BulkUpdateParams(), job.params)
    summary: dict[str, Any] = dict(job.result or {})
    # Fixed at the first run, so a resumed run means the same "overdue".
    as_of = datetime.fromisoformat(summary.setdefault("as_of", utcnow().isoformat()))
    conditions = tasks_service.task_conditions(owner_id=job.owner_id, **params["filter"])
    if params["action"] == COMPLETE_OVERDUE:
        target = TaskStatus.DONE
        conditions += [Task.due_at.is_not(None), Task.due_at < as_of]
    else:
        target = TaskStatus(params["status"])
    conditions.append(Task.status != target.value)
    if "matched" not in summary:
        summary["matched"] = session.scalar(
            select(func.count()).select_from(Task).where(*conditions)
        )
        summary["updated"] = 0
    summary["action"] = params["action"]
    summary["status"] = target.value
    batch = current_settings().JOB_BATCH_SIZE
    after_id = 0
    while True:
        tasks = session.scalars(
            select(Task)
            .where(*conditions, Task.id > after_id)
            .order_by(Task.id)
            .limit(batch)
            .with_for_update()
        ).all()
        if not tasks:
            break
        for task in tasks:
            tasks_service.update_task(
                session, owner_id=job.owner_id, task_id=task.id, changes={"status": target}
            )
        summary["updated"] += len(tasks)
        after_id = tasks[-1].id
        job.result = dict(summary)
        progress(percent(summary["updated"], summary["matched"]))
    job.result = dict(summary)
    return None
