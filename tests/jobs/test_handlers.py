"""The job handlers, run directly in the test's transaction with a fake progress callback."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.jobs.handlers import tasks_bulk_update, tasks_export, tasks_import
from app.jobs.handlers.base import JobError
from app.jobs.handlers.tasks_bulk_update import bulk_update_tasks
from app.jobs.handlers.tasks_export import export_tasks
from app.jobs.handlers.tasks_import import import_tasks
from app.tasks.models import Task, TaskPriority
from app.users.models import User
from tests.jobs.helpers import Progress, events_named, make_job, settings_changed
from tests.tasks.factories import TaskFactory

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


def owned_tasks(session: Session, owner: User) -> list[Task]:
    """``owner``'s tasks by id."""
    return list(session.scalars(select(Task).where(Task.owner_id == owner.id).order_by(Task.id)))


def csv_rows(data: bytes) -> list[dict[str, str]]:
    """The rows of an exported CSV file."""
    return list(csv.DictReader(io.StringIO(data.decode(), newline="")))


# --- tasks.export ------------------------------------------------------------------------------


def test_export_csv_has_the_owners_tasks_in_id_order_and_reports_progress_per_batch(
    db_session: Session, user: User, other_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = [
        TaskFactory(owner=user, title=f"Task {n}", tags=["work", "q1"], due_at=T0) for n in range(5)
    ]
    TaskFactory(owner=other_user, title="Not mine")
    job = make_job(db_session, user, params={"format": "csv"})
    progress = Progress()

    with settings_changed(monkeypatch, [tasks_export], JOB_BATCH_SIZE=2):
        result = export_tasks(db_session, job, progress)

    rows = csv_rows(result.data)
    assert [int(row["id"]) for row in rows] == [task.id for task in tasks]
    assert list(rows[0]) == [
        "id",
        "title",
        "description",
        "status",
        "priority",
        "due_at",
        "tags",
        "created_at",
        "updated_at",
        "completed_at",
    ]
    assert rows[0]["title"] == "Task 0"
    assert rows[0]["tags"] == "work;q1"
    assert datetime.fromisoformat(rows[0]["due_at"]) == T0
    assert rows[0]["description"] == ""
    assert progress.reports == [40, 80]
    assert result.filename == f"tasks-{job.id}.csv"
    assert result.content_type == "text/csv; charset=utf-8"
    assert job.result == {"format": "csv", "tasks": 5, "bytes": len(result.data)}


def test_export_csv_makes_formula_cells_inert(db_session: Session, user: User) -> None:
    TaskFactory(owner=user, title='=HYPERLINK("http://evil")', description="+1", tags=["@x"])
    result = export_tasks(db_session, make_job(db_session, user), Progress())
    row = csv_rows(result.data)[0]
    assert row["title"] == '\'=HYPERLINK("http://evil")'
    assert row["description"] == "'+1"
    assert row["tags"] == "'@x"


def test_export_json_applies_the_filters(db_session: Session, user: User) -> None:
    wanted = TaskFactory(owner=user, status="todo", tags=["work"], priority=TaskPriority.HIGH)
    TaskFactory(owner=user, status="done", tags=["work"])
    TaskFactory(owner=user, status="todo", tags=["home"])
    job = make_job(db_session, user, params={"format": "json", "status": "todo", "tag": "work"})

    result = export_tasks(db_session, job, Progress())

    document = json.loads(result.data)
    assert [task["id"] for task in document["tasks"]] == [wanted.id]
    assert document["tasks"][0]["priority"] == "high"
    assert document["tasks"][0]["tags"] == ["work"]
    assert result.content_type == "application/json"


def test_export_of_nothing_is_a_valid_empty_file(db_session: Session, user: User) -> None:
    result = export_tasks(
        db_session, make_job(db_session, user, params={"format": "json"}), Progress()
    )
    assert json.loads(result.data) == {"tasks": []}


def test_export_larger_than_the_limit_fails_with_a_clear_error(
    db_session: Session, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(3):
        TaskFactory(owner=user)
    job = make_job(db_session, user)
    with (
        settings_changed(monkeypatch, [tasks_export], JOB_MAX_RESULT_BYTES=100),
        pytest.raises(JobError, match="larger than 100 bytes; narrow it with filters"),
    ):
        export_tasks(db_session, job, Progress())


def test_export_with_invalid_stored_params_fails_with_a_clear_error(
    db_session: Session, user: User
) -> None:
    job = make_job(db_session, user)
    job.params = {"format": "xlsx"}
    with pytest.raises(JobError, match=r"parameters are invalid: format: Must be one of"):
        export_tasks(db_session, job, Progress())


# --- tasks.import ------------------------------------------------------------------------------

GOOD_AND_BAD = (
    "title,description,status,priority,due_at,tags\n"
    "Write the report,Numbers,todo,high,2030-01-31T17:00:00+01:00,work; q1 ;\n"
    ",no title,todo,low,,\n"
    "\n"
    "Ship it,,done,,,\n"
    "Bad date,,todo,normal,tomorrow,\n"
    "Bad status,,doing,,2030-01-31T17:00:00,\n"
)


def test_import_creates_valid_rows_and_reports_each_bad_row_by_its_spreadsheet_number(
    db_session: Session, user: User
) -> None:
    job = make_job(db_session, user, "tasks.import", csv_text=GOOD_AND_BAD)

    assert import_tasks(db_session, job, Progress()) is None

    created = owned_tasks(db_session, user)
    assert [task.title for task in created] == ["Write the report", "Ship it"]
    report, ship = created
    assert report.description == "Numbers"
    assert report.priority == TaskPriority.HIGH
    assert report.due_at == datetime(2030, 1, 31, 16, 0, tzinfo=UTC)
    assert report.tags == ["work", "q1"]
    assert ship.status == "done"
    assert ship.completed_at is not None
    assert ship.description is None
    assert job.result is not None
    assert job.result["rows"] == 5
    assert job.result["created"] == 2
    assert job.result["failed"] == 3
    assert [error["row"] for error in job.result["errors"]] == [3, 6, 7]
    errors = {error["row"]: error["errors"] for error in job.result["errors"]}
    assert set(errors[3]) == {"title"}
    assert set(errors[6]) == {"due_at"}
    assert set(errors[7]) == {"status", "due_at"}  # a naive time is refused too
    # Through the tasks service: the same events as POST /tasks.
    assert [name for name, _ in events_named(db_session, "task.")] == [
        "task.created",
        "task.created",
        "task.completed",
    ]


def test_import_reads_an_exported_file_back_unchanged(
    db_session: Session, user: User, other_user: User
) -> None:
    TaskFactory(owner=user, title="=SUM(A1)", description="line 1\nline 2", tags=["a", "b"])
    TaskFactory(owner=user, title="- dash", due_at=T0, status="in_progress")
    exported = export_tasks(db_session, make_job(db_session, user), Progress())
    job = make_job(db_session, other_user, "tasks.import", csv_text=exported.data.decode())

    import_tasks(db_session, job, Progress())

    copies = owned_tasks(db_session, other_user)
    originals = owned_tasks(db_session, user)
    fields = ("title", "description", "status", "priority", "due_at", "tags")
    assert [[getattr(task, name) for name in fields] for task in copies] == [
        [getattr(task, name) for name in fields] for task in originals
    ]
    assert job.result is not None
    assert job.result["failed"] == 0


def test_import_accepts_a_byte_order_mark_and_any_column_order(
    db_session: Session, user: User
) -> None:
    job = make_job(
        db_session, user, "tasks.import", csv_text="\ufefftags,Title\nhome,Water plants\n"
    )
    import_tasks(db_session, job, Progress())
    [task] = owned_tasks(db_session, user)
    assert (task.title, task.tags) == ("Water plants", ["home"])


def test_import_reports_a_row_with_more_cells_than_the_header(
    db_session: Session, user: User
) -> None:
    job = make_job(db_session, user, "tasks.import", csv_text="title\nA,extra\nB\n")
    import_tasks(db_session, job, Progress())
    assert [task.title for task in owned_tasks(db_session, user)] == ["B"]
    assert job.result is not None
    assert job.result["errors"] == [
        {"row": 2, "errors": {"_row": ["Has 2 cells but the header names 1."]}}
    ]


def test_import_commits_per_batch_and_resumes_after_the_last_one(
    db_session: Session, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "title\n" + "".join(f"Row {n}\n" for n in range(2, 9))  # rows 2..8
    job = make_job(db_session, user, "tasks.import", csv_text=text)
    # An earlier run committed rows 2..4 (its checkpoint) before its worker died.
    for n in range(2, 5):
        TaskFactory(owner=user, title=f"Row {n}")
    job.result = {
        "rows": 7,
        "last_row": 4,
        "created": 3,
        "failed": 0,
        "errors": [],
        "errors_truncated": False,
    }
    progress = Progress()

    with settings_changed(monkeypatch, [tasks_import], JOB_BATCH_SIZE=2):
        import_tasks(db_session, job, progress)

    assert [task.title for task in owned_tasks(db_session, user)] == [
        f"Row {n}" for n in range(2, 9)
    ]
    assert progress.reports == [71, 100]  # after rows 5-6 and 7-8: 5 and 7 of 7
    assert job.result is not None
    assert (job.result["created"], job.result["last_row"]) == (7, 8)


def test_import_keeps_a_bounded_number_of_row_errors(
    db_session: Session, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks_import, "MAX_ROW_ERRORS", 2)
    job = make_job(db_session, user, "tasks.import", csv_text="title,status\n" + "x,bad\n" * 5)
    import_tasks(db_session, job, Progress())
    assert job.result is not None
    assert job.result["failed"] == 5
    assert [error["row"] for error in job.result["errors"]] == [2, 3]
    assert job.result["errors_truncated"] is True


def test_import_of_a_file_that_is_not_csv_fails_with_a_clear_error(
    db_session: Session, user: User
) -> None:
    too_long = "a" * 200_000  # longer than a CSV field may be
    job = make_job(db_session, user, "tasks.import", csv_text=f"title\n{too_long}\n")
    with pytest.raises(JobError, match="not valid CSV"):
        import_tasks(db_session, job, Progress())


# --- tasks.bulk_update -------------------------------------------------------------------------


def test_complete_overdue_completes_only_open_past_due_tasks_of_the_owner_with_events(
    db_session: Session, user: User, other_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = utcnow()
    overdue = [
        TaskFactory(owner=user, due_at=now - timedelta(days=n), status="todo") for n in (1, 2, 3)
    ]
    TaskFactory(owner=user, due_at=now - timedelta(days=1), status="in_progress")
    untouched = [
        TaskFactory(owner=user, due_at=now + timedelta(days=1)),
        TaskFactory(owner=user, due_at=None),
        TaskFactory(owner=user, due_at=now - timedelta(days=1), status="done"),
        TaskFactory(owner=other_user, due_at=now - timedelta(days=1)),
    ]
    job = make_job(db_session, user, "tasks.bulk_update", {"action": "complete_overdue"})
    progress = Progress()

    with settings_changed(monkeypatch, [tasks_bulk_update], JOB_BATCH_SIZE=3):
        bulk_update_tasks(db_session, job, progress)

    for task in overdue:
        db_session.refresh(task)
        assert task.status == "done"
        assert task.completed_at is not None
    assert [task.status for task in untouched] == ["todo", "todo", "done", "todo"]
    assert progress.reports == [75, 100]
    assert job.result is not None
    assert (job.result["matched"], job.result["updated"]) == (4, 4)
    names = [name for name, _ in events_named(db_session, "task.")]
    assert names.count("task.updated") == 4
    assert names.count("task.completed") == 4


def test_set_status_changes_the_filtered_tasks(db_session: Session, user: User) -> None:
    tagged = TaskFactory(owner=user, tags=["q1"])
    other = TaskFactory(owner=user, tags=["q2"])
    job = make_job(
        db_session,
        user,
        "tasks.bulk_update",
        {"action": "set_status", "status": "in_progress", "filter": {"tag": "q1"}},
    )
    bulk_update_tasks(db_session, job, Progress())
    db_session.refresh(tagged)
    db_session.refresh(other)
    assert (tagged.status, other.status) == ("in_progress", "todo")
    assert job.result is not None
    assert job.result["updated"] == 1


def test_set_status_honours_every_filter_of_the_task_list(db_session: Session, user: User) -> None:
    now = utcnow()
    matching = {"status": "todo", "priority": "high", "tags": ["q1"], "due_at": now}
    chosen = TaskFactory(owner=user, **matching)
    missed = [
        TaskFactory(owner=user, **{**matching, "status": "done"}),
        TaskFactory(owner=user, **{**matching, "priority": "low"}),
        TaskFactory(owner=user, **{**matching, "tags": ["q2"]}),
        TaskFactory(owner=user, **{**matching, "due_at": now - timedelta(days=2)}),
        TaskFactory(owner=user, **{**matching, "due_at": now + timedelta(days=2)}),
    ]
    task_filter = {
        "status": "todo",
        "priority": "high",
        "tag": "q1",
        "due_after": (now - timedelta(days=1)).isoformat(),
        "due_before": (now + timedelta(days=1)).isoformat(),
    }
    job = make_job(
        db_session,
        user,
        "tasks.bulk_update",
        {"action": "set_status", "status": "in_progress", "filter": task_filter},
    )
    bulk_update_tasks(db_session, job, Progress())
    for task in [chosen, *missed]:
        db_session.refresh(task)
    assert chosen.status == "in_progress"
    assert [task.status for task in missed] == ["done", "todo", "todo", "todo", "todo"]
