"""Due-task reminders: once per task and due date, re-armed when the due date moves, never for
done, past, far-off or deactivated owners' tasks; bounded batches through a partial index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.notifications.models import EmailMessage
from app.tasks import background
from app.tasks.models import Task, TaskStatus
from app.users.models import User
from tests.factories import UserFactory
from tests.tasks.factories import TaskFactory

LEAD = timedelta(hours=1)


def reminders(session: Session) -> list[EmailMessage]:
    return list(
        session.scalars(
            select(EmailMessage)
            .where(EmailMessage.template == "task_due")
            .order_by(EmailMessage.created_at)
        )
    )


def run(session: Session, now: datetime | None = None, batch: int = 500) -> int:
    queued = background.queue_due_reminders(session, now=now or utcnow(), lead=LEAD, batch=batch)
    return len(queued)


def test_a_task_coming_due_is_reminded_once(db_session: Session, user: User) -> None:
    task = TaskFactory(owner=user, title="Ship it", due_at=utcnow() + timedelta(minutes=30))

    assert run(db_session) == 1
    assert run(db_session) == 0  # a second beat run
    [email] = reminders(db_session)
    assert email.to_address == user.email
    assert email.subject == "Reminder: Ship it is due soon"
    assert email.context["task_id"] == task.id
    assert email.dedupe_key == f"reminder:{task.id}:{task.due_at.astimezone(UTC).isoformat()}"


def test_moving_the_due_date_arms_the_reminder_again(db_session: Session, user: User) -> None:
    task = TaskFactory(owner=user, due_at=utcnow() + timedelta(minutes=30))
    assert run(db_session) == 1
    task.due_at = utcnow() + timedelta(minutes=50)
    db_session.commit()
    assert run(db_session) == 1
    assert run(db_session) == 0
    assert len(reminders(db_session)) == 2


def test_done_past_far_and_undated_tasks_are_not_reminded(db_session: Session, user: User) -> None:
    now = utcnow()
    TaskFactory(owner=user, status=TaskStatus.DONE.value, due_at=now + timedelta(minutes=10))
    TaskFactory(owner=user, due_at=now - timedelta(minutes=1))
    TaskFactory(owner=user, due_at=now + LEAD + timedelta(minutes=1))
    TaskFactory(owner=user, due_at=None)
    inactive = UserFactory(is_active=False)
    TaskFactory(owner=inactive, due_at=now + timedelta(minutes=10))
    in_progress = TaskFactory(
        owner=user, status=TaskStatus.IN_PROGRESS.value, due_at=now + timedelta(minutes=10)
    )

    assert run(db_session, now) == 1
    [email] = reminders(db_session)
    assert email.context["task_id"] == in_progress.id


def test_every_task_is_reached_across_batches(db_session: Session, user: User) -> None:
    now = utcnow()
    same_time = now + timedelta(minutes=20)
    tasks = [TaskFactory(owner=user, due_at=same_time) for _ in range(3)]
    tasks += [TaskFactory(owner=user, due_at=now + timedelta(minutes=m)) for m in (5, 40)]

    assert run(db_session, now, batch=2) == 5
    reminded = {email.context["task_id"] for email in reminders(db_session)}
    assert reminded == {task.id for task in tasks}


def test_the_beat_task_queues_and_enqueues(db_session: Session, user: User) -> None:
    TaskFactory(owner=user, due_at=utcnow() + timedelta(minutes=30))
    assert background.send_due_reminders.run() == 1
    assert background.send_due_reminders.run() == 0


def test_the_reminder_query_uses_the_partial_index(db_session: Session) -> None:
    """At a million tasks the scan must follow the tasks coming due, not the table."""
    now = utcnow()
    query = (
        select(Task.id)
        .where(
            Task.status != TaskStatus.DONE.value,
            Task.due_at.is_not(None),
            Task.due_at > now,
            Task.due_at <= now + LEAD,
        )
        .order_by(Task.due_at, Task.id)
        .limit(500)
    )
    compiled = query.compile(db_session.get_bind(), compile_kwargs={"literal_binds": True})
    db_session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(db_session.execute(text(f"EXPLAIN {compiled}")).scalars())
    assert "ix_tasks_open_due" in plan
