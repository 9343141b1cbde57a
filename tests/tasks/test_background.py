"""Due-task reminders: once per task and due date, re-armed when the due date moves, never for
done, past, far-off or deactivated owners' tasks; bounded batches through a partial index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.notifications.models import EmailMessage
from app.tasks import background, service
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


def test_a_reminder_not_sent_yet_is_withdrawn_when_its_task_is_done(
    db_session: Session, user: User
) -> None:
    task = TaskFactory(owner=user, due_at=utcnow() + timedelta(minutes=30))
    assert run(db_session) == 1

    service.update_task(db_session, owner_id=user.id, task_id=task.id, changes={"status": "done"})

    assert reminders(db_session) == []
    assert run(db_session) == 0  # done tasks are not reminded


def test_a_reopened_task_is_reminded_again(db_session: Session, user: User) -> None:
    task = TaskFactory(owner=user, due_at=utcnow() + timedelta(minutes=30))
    assert run(db_session) == 1
    service.update_task(db_session, owner_id=user.id, task_id=task.id, changes={"status": "done"})
    service.update_task(db_session, owner_id=user.id, task_id=task.id, changes={"status": "todo"})

    assert run(db_session) == 1
    assert len(reminders(db_session)) == 1


def test_moving_the_due_date_withdraws_the_old_reminder(db_session: Session, user: User) -> None:
    task = TaskFactory(owner=user, due_at=utcnow() + timedelta(minutes=30))
    assert run(db_session) == 1
    moved = utcnow() + timedelta(minutes=50)

    service.update_task(db_session, owner_id=user.id, task_id=task.id, changes={"due_at": moved})

    assert reminders(db_session) == []
    assert run(db_session) == 1
    [email] = reminders(db_session)
    assert email.dedupe_key == service.reminder_key(task.id, moved)


def test_deleting_the_task_withdraws_its_reminder(db_session: Session, user: User) -> None:
    task = TaskFactory(owner=user, due_at=utcnow() + timedelta(minutes=30))
    assert run(db_session) == 1

    service.delete_task(db_session, owner_id=user.id, task_id=task.id)

    assert reminders(db_session) == []


def test_a_reminder_sent_or_being_sent_is_kept(db_session: Session, user: User) -> None:
    sent = TaskFactory(owner=user, due_at=utcnow() + timedelta(minutes=30))
    sending = TaskFactory(owner=user, due_at=utcnow() + timedelta(minutes=40))
    assert run(db_session) == 2
    first, second = reminders(db_session)
    first.state = "succeeded"
    second.lease_until = utcnow() + timedelta(minutes=2)  # a worker holds it right now
    db_session.commit()

    for task in (sent, sending):
        service.update_task(
            db_session, owner_id=user.id, task_id=task.id, changes={"status": "done"}
        )

    assert {email.id for email in reminders(db_session)} == {first.id, second.id}
