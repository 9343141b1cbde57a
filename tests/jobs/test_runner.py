"""The runner: lease claims, outcomes, cancellation, fencing, batches; and the beat sweeps."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.events.models import OutboxEvent
from app.jobs import background, runner, sweep
from app.jobs.handlers import HANDLERS
from app.jobs.handlers.base import JobError, Progress
from app.jobs.models import FileKind, Job, JobFile, JobState
from app.jobs.runner import run_job
from app.tasks import service as tasks_service
from app.tasks.models import Task
from app.users.models import User
from tests.jobs.helpers import events_named, make_job, settings_changed
from tests.tasks.factories import TaskFactory


def reread(session: Session, job: Job) -> Job:
    """``job`` as committed now."""
    session.expire_all()
    fresh = session.get(Job, job.id)
    assert fresh is not None
    return fresh


def write_row(session: Session, job: Job, **values: Any) -> None:
    """Set ``values`` on ``job``'s row behind the ORM's back, as another worker would; commit."""
    session.execute(update(Job).where(Job.id == job.id).values(**values))
    session.commit()


def files_of(session: Session, job: Job) -> dict[str, JobFile]:
    """The job's files by kind."""
    rows = session.scalars(select(JobFile).where(JobFile.job_id == job.id))
    return {row.kind: row for row in rows}


def use_handler(monkeypatch: pytest.MonkeyPatch, handler: Any) -> None:
    """Run ``handler`` for tasks.export jobs."""
    monkeypatch.setitem(HANDLERS, "tasks.export", handler)


def titles(session: Session, owner: User) -> list[str]:
    """``owner``'s task titles by id."""
    query = select(Task.title).where(Task.owner_id == owner.id).order_by(Task.id)
    return list(session.scalars(query))


# --- outcomes ----------------------------------------------------------------------------------


def test_a_successful_export_stores_its_file_and_records_job_succeeded(
    db_session: Session, user: User
) -> None:
    TaskFactory(owner=user, title="Only one")
    job = make_job(db_session, user)

    assert run_job(job.id) == "succeeded"

    job = reread(db_session, job)
    assert job.state == "succeeded"
    assert (job.progress, job.attempts, job.error) == (100, 1, None)
    assert job.started_at is not None
    assert job.finished_at is not None
    assert job.started_at <= job.finished_at
    assert job.lease_until is None
    assert job.result == {
        "format": "csv",
        "tasks": 1,
        "bytes": files_of(db_session, job)["result"].size,
    }
    result = files_of(db_session, job)["result"]
    assert b"Only one" in result.data
    assert [name for name, _ in events_named(db_session, "job.")] == [
        "job.created",
        "job.succeeded",
    ]
    _, payload = events_named(db_session, "job.succeeded")[0]
    assert payload["job_id"] == job.id
    assert payload["owner_id"] == user.id
    assert payload["state"] == "succeeded"


def test_a_finished_import_drops_its_upload(db_session: Session, user: User) -> None:
    job = make_job(db_session, user, "tasks.import", csv_text="title\nOne\n")
    assert set(files_of(db_session, job)) == {"input"}
    assert run_job(job.id) == "succeeded"
    assert files_of(db_session, job) == {}
    assert titles(db_session, user) == ["One"]


def test_an_unexpected_exception_fails_the_job_with_a_clear_error_and_logs_the_traceback(
    db_session: Session,
    user: User,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(session: Session, job: Job, progress: Progress) -> None:
        raise ZeroDivisionError("secret internals")

    use_handler(monkeypatch, broken)
    job = make_job(db_session, user)

    with caplog.at_level(logging.ERROR, logger="app.jobs.runner"):
        assert run_job(job.id) == "failed"

    job = reread(db_session, job)
    assert job.state == "failed"
    assert job.error is not None
    assert job.error.startswith("The job stopped because of an unexpected error.")
    assert "ZeroDivision" not in job.error
    assert "secret" not in job.error
    assert job.finished_at is not None
    assert any(
        record.exc_info and "secret internals" in str(record.exc_info[1])
        for record in caplog.records
    )
    [(_, payload)] = events_named(db_session, "job.failed")
    assert payload["error"] == job.error


def test_a_job_error_is_the_jobs_error_message(db_session: Session, user: User) -> None:
    job = make_job(db_session, user)
    write_row(db_session, job, params={"format": "xlsx"})

    assert run_job(job.id) == "failed"

    assert reread(db_session, job).error == (
        "The job's parameters are invalid: format: Must be one of: csv, json."
    )


def test_the_soft_time_limit_fails_the_job_as_timed_out(
    db_session: Session, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow(session: Session, job: Job, progress: Progress) -> None:
        raise SoftTimeLimitExceeded

    use_handler(monkeypatch, slow)
    job = make_job(db_session, user)
    assert run_job(job.id) == "failed"
    assert "took longer than 300 seconds" in (reread(db_session, job).error or "")


def test_a_failed_batch_rolls_back_whole_though_each_service_call_committed(
    db_session: Session, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_done(session: Session, job: Job, progress: Progress) -> None:
        tasks_service.create_task(session, owner_id=job.owner_id, values={"title": "First batch"})
        progress(50)
        tasks_service.create_task(session, owner_id=job.owner_id, values={"title": "Lost 1"})
        tasks_service.create_task(session, owner_id=job.owner_id, values={"title": "Lost 2"})
        raise JobError("Second batch failed.")

    use_handler(monkeypatch, half_done)
    job = make_job(db_session, user)

    assert run_job(job.id) == "failed"

    assert titles(db_session, user) == ["First batch"]
    job = reread(db_session, job)
    assert (job.error, job.progress) == ("Second batch failed.", 50)


# --- cancel ------------------------------------------------------------------------------------


def test_a_cancel_asked_while_running_stops_at_the_next_progress_report(
    db_session: Session, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached: list[str] = []

    def long_running(session: Session, job: Job, progress: Progress) -> None:
        tasks_service.create_task(session, owner_id=job.owner_id, values={"title": "Kept"})
        # The owner's DELETE lands while this batch runs.
        session.execute(update(Job).where(Job.id == job.id).values(cancel_requested_at=utcnow()))
        progress(40)
        reached.append("after the cancel")

    use_handler(monkeypatch, long_running)
    job = make_job(db_session, user)

    assert run_job(job.id) == "cancelled"

    assert reached == []
    job = reread(db_session, job)
    assert (job.state, job.progress, job.error) == ("cancelled", 40, None)
    assert job.finished_at is not None
    assert titles(db_session, user) == ["Kept"]  # the batch before the stop is committed
    assert [name for name, _ in events_named(db_session, "job.")][-1] == "job.cancelled"


def test_a_job_whose_cancel_was_asked_before_a_rerun_is_cancelled_without_running(
    db_session: Session, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_handler(monkeypatch, lambda *_: pytest.fail("the handler must not run"))
    job = make_job(db_session, user)
    past = utcnow() - timedelta(minutes=5)
    write_row(
        db_session, job, state="running", attempts=1, lease_until=past, cancel_requested_at=past
    )

    assert run_job(job.id) == "cancelled"
    assert reread(db_session, job).attempts == 2


# --- claims and fencing ------------------------------------------------------------------------


def test_a_job_is_run_once_a_duplicate_message_finds_nothing_to_claim(
    db_session: Session, user: User
) -> None:
    job = make_job(db_session, user)
    assert run_job(job.id) == "succeeded"
    assert run_job(job.id) == "not claimable"
    assert reread(db_session, job).attempts == 1
    assert len(events_named(db_session, "job.succeeded")) == 1


def test_a_running_job_with_a_live_lease_is_not_claimed(db_session: Session, user: User) -> None:
    job = make_job(db_session, user)
    write_row(
        db_session, job, state="running", attempts=1, lease_until=utcnow() + timedelta(minutes=1)
    )
    assert run_job(job.id) == "not claimable"
    assert reread(db_session, job).attempts == 1


def test_a_running_job_whose_lease_expired_is_run_again(db_session: Session, user: User) -> None:
    job = make_job(db_session, user)
    write_row(
        db_session, job, state="running", attempts=1, lease_until=utcnow() - timedelta(seconds=1)
    )
    assert run_job(job.id) == "succeeded"
    assert reread(db_session, job).attempts == 2


def test_a_job_interrupted_too_often_is_given_up(db_session: Session, user: User) -> None:
    job = make_job(db_session, user)
    write_row(
        db_session, job, state="running", attempts=3, lease_until=utcnow() - timedelta(seconds=1)
    )

    assert run_job(job.id) == "failed"

    job = reread(db_session, job)
    assert job.error == "The job was interrupted 3 times (its worker stopped); gave up."
    assert job.attempts == 4


def test_a_run_that_lost_its_lease_writes_nothing(
    db_session: Session, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stalled(session: Session, job: Job, progress: Progress) -> None:
        tasks_service.create_task(session, owner_id=job.owner_id, values={"title": "Duplicate"})
        # Meanwhile the lease expired and another worker claimed the job (attempt 2).
        session.execute(update(Job).where(Job.id == job.id).values(attempts=2))
        progress(50)

    use_handler(monkeypatch, stalled)
    job = make_job(db_session, user)

    assert run_job(job.id) == "lease lost"

    assert titles(db_session, user) == []
    job = reread(db_session, job)
    assert (job.state, job.attempts, job.progress) == ("running", 1, 0)
    assert events_named(db_session, "job.succeeded") == []


# --- the consumer and the sweeps ---------------------------------------------------------------


def test_job_created_enqueues_the_run_and_marks_the_job_enqueued(
    db_session: Session, user: User
) -> None:
    job = make_job(db_session, user)
    event = db_session.scalars(select(OutboxEvent).where(OutboxEvent.name == "job.created")).one()
    assert event.payload == {"job_id": job.id, "owner_id": user.id, "type": "tasks.export"}

    follow_ups = background.start_job(db_session, event)

    assert [(item.task_name, item.args) for item in follow_ups] == [("jobs.run", (job.id,))]
    assert job.enqueued_at is not None


def test_job_created_of_a_job_cancelled_meanwhile_enqueues_nothing(
    db_session: Session, user: User
) -> None:
    job = make_job(db_session, user)
    job.state = JobState.CANCELLED.value
    event = db_session.scalars(select(OutboxEvent).where(OutboxEvent.name == "job.created")).one()
    assert background.start_job(db_session, event) == []


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """What the sweep sends to the broker."""
    messages: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(sweep, "send_task", lambda name, args: messages.append((name, args)))
    return messages


def test_the_sweep_re_enqueues_stranded_jobs_once_per_grace_period(
    db_session: Session, user: User, sent: list[tuple[str, tuple[Any, ...]]]
) -> None:
    now = utcnow()
    old = now - timedelta(minutes=5)
    lost_message = make_job(db_session, user)
    dead_worker = make_job(db_session, user)
    just_created = make_job(db_session, user)
    healthy = make_job(db_session, user)
    finished = make_job(db_session, user)
    for job, values in (
        (lost_message, {"created_at": old, "enqueued_at": old}),
        (
            dead_worker,
            {"state": "running", "enqueued_at": old, "lease_until": now - timedelta(seconds=1)},
        ),
        (just_created, {"created_at": now}),
        (
            healthy,
            {"state": "running", "enqueued_at": old, "lease_until": now + timedelta(minutes=1)},
        ),
        (finished, {"state": "succeeded", "created_at": old}),
    ):
        write_row(db_session, job, **values)

    first = sweep.requeue_stale(db_session, now=now, grace=timedelta(minutes=1), batch=10)
    second = sweep.requeue_stale(db_session, now=now, grace=timedelta(minutes=1), batch=10)

    assert first == sorted([lost_message.id, dead_worker.id])
    assert sent == [("jobs.run", (job_id,)) for job_id in first]
    assert second == []
    assert reread(db_session, lost_message).enqueued_at == now


def test_the_sweep_is_bounded_and_a_dead_broker_leaves_the_jobs_for_the_next_one(
    db_session: Session, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = utcnow() - timedelta(minutes=5)
    jobs = [make_job(db_session, user) for _ in range(3)]
    db_session.execute(update(Job).values(created_at=old))
    db_session.commit()

    def broker_down(name: str, args: tuple[Any, ...]) -> None:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(sweep, "send_task", broker_down)
    assert sweep.requeue_stale(db_session, now=utcnow(), grace=timedelta(0), batch=2) == []
    assert all(reread(db_session, job).enqueued_at is None for job in jobs)

    monkeypatch.setattr(sweep, "send_task", lambda name, args: None)
    assert sweep.requeue_stale(db_session, now=utcnow(), grace=timedelta(0), batch=2) == [
        jobs[0].id,
        jobs[1].id,
    ]


def test_purge_deletes_the_files_of_jobs_finished_before_the_retention(
    db_session: Session, user: User
) -> None:
    old_job, recent_job = make_job(db_session, user), make_job(db_session, user)
    run_job(old_job.id)
    run_job(recent_job.id)
    db_session.execute(
        update(Job).where(Job.id == old_job.id).values(finished_at=utcnow() - timedelta(days=8))
    )
    db_session.commit()

    deleted = sweep.purge_files(db_session, finished_before=utcnow() - timedelta(days=7), batch=1)

    assert deleted == 1
    assert files_of(db_session, old_job) == {}
    assert set(files_of(db_session, recent_job)) == {FileKind.RESULT.value}


def test_the_lease_fence_is_checked_by_every_write(db_session: Session, user: User) -> None:
    job = make_job(db_session, user)
    claim = runner.claim_job(db_session, job_id=job.id, now=utcnow(), lease=timedelta(minutes=1))
    assert claim is not None
    stale = runner.Fence(job.id, claim.fence.attempt - 1)
    assert runner.finish_job(db_session, stale, state=JobState.SUCCEEDED) is False
    assert reread(db_session, job).state == "running"
    assert runner.finish_job(db_session, claim.fence, state=JobState.SUCCEEDED) is True
    assert reread(db_session, job).state == "succeeded"


def test_an_import_runs_batch_by_batch_to_the_end(
    db_session: Session, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.jobs.handlers import tasks_import

    job = make_job(
        db_session, user, "tasks.import", csv_text="title\n" + "".join(f"T{n}\n" for n in range(5))
    )
    with settings_changed(monkeypatch, [tasks_import], JOB_BATCH_SIZE=2):
        assert run_job(job.id) == "succeeded"
    assert reread(db_session, job).result == {
        "rows": 5,
        "last_row": 6,
        "created": 5,
        "failed": 0,
        "errors": [],
        "errors_truncated": False,
    }
