"""What each job type does: ``HANDLERS[type](session, job, progress)``.

The contract (see ``base``): a handler works in batches of ``JOB_BATCH_SIZE``; after each batch
it updates ``job.result`` (its running summary, which is also its resume point) and calls
``progress(percent)``, which commits everything done so far, renews the lease and raises
``JobCancelled`` when the owner asked to stop. It raises ``JobError`` with a message for the
owner when the job cannot be done, and returns the result file, if it makes one.
"""

from __future__ import annotations

from app.jobs.handlers.base import Handler
from app.jobs.handlers.tasks_bulk_update import bulk_update_tasks
from app.jobs.handlers.tasks_export import export_tasks
from app.jobs.handlers.tasks_import import import_tasks
from app.jobs.models import JobType

HANDLERS: dict[str, Handler] = {
    JobType.TASKS_EXPORT.value: export_tasks,
    JobType.TASKS_IMPORT.value: import_tasks,
    JobType.TASKS_BULK_UPDATE.value: bulk_update_tasks,
}
