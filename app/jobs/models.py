"""Jobs and their files, both in the database: they survive restarts and need no shared disk."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column

from app.core.database import Base, IdType, utcnow


class JobState(enum.StrEnum):
    """Where a job stands; the last three are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class JobType(enum.StrEnum):
    """What a job does."""

    TASKS_EXPORT = "tasks.export"
    TASKS_IMPORT = "tasks.import"
    TASKS_BULK_UPDATE = "tasks.bulk_update"


class FileKind(enum.StrEnum):
    """An uploaded input or a produced result."""

    INPUT = "input"
    RESULT = "result"


class Job(Base):
    """A unit of background work of one user, run by a worker that holds its lease."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED.value)
    progress: Mapped[int] = mapped_column(default=0)
    # Runs started; a run cut short by a dead worker counts, so the lease is also a fence.
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)  # user-facing, never a traceback
    # The summary (counts, per-row errors); handlers keep it current as they go, so a failed or
    # cancelled job shows what was done, and an interrupted import resumes after its last batch.
    result: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime | None]  # last time a run was sent to the broker
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="state"
        ),
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress"),
        Index("ix_jobs_owner_created", "owner_id", "created_at", "id"),
        # The sweep looks only at unfinished jobs; keep that index small.
        Index(
            "ix_jobs_unfinished",
            "state",
            "lease_until",
            postgresql_where=text("state IN ('queued', 'running')"),
            sqlite_where=text("state IN ('queued', 'running')"),
        ),
        Index("ix_jobs_finished_at", "finished_at"),
    )


class JobFile(Base):
    """An import's upload or an export's result, stored in PostgreSQL (``bytea``)."""

    __tablename__ = "job_files"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    job_id: Mapped[int] = mapped_column(IdType, ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int]
    # Loaded only when asked for: listing a job's files never reads the bytes.
    data: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint("kind IN ('input', 'result')", name="kind"),
        UniqueConstraint("job_id", "kind"),
    )
