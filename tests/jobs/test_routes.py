"""``/api/v1/jobs`` over HTTP: create (JSON and multipart), list, read, download, cancel."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.jobs.models import Job, JobFile
from app.jobs.runner import run_job
from app.users.models import User
from tests.factories import auth_headers
from tests.jobs.helpers import events_named, make_job
from tests.tasks.factories import TaskFactory

JOBS = "/api/v1/jobs"


@pytest.fixture
def headers(user: User) -> dict[str, str]:
    """``user``'s Authorization header."""
    return auth_headers(user)


def upload(
    client: FlaskClient,
    headers: dict[str, str],
    content: bytes,
    *,
    filename: str = "tasks.csv",
    **fields: str,
) -> Any:
    """POST a multipart tasks.import request."""
    data: dict[str, Any] = {"type": "tasks.import", **fields}
    data["file"] = (io.BytesIO(content), filename, "text/csv")
    return client.post(JOBS, data=data, headers=headers, content_type="multipart/form-data")


def job_count(session: Session) -> int:
    """How many jobs exist."""
    return int(session.scalar(select(func.count()).select_from(Job)) or 0)


# --- POST /jobs --------------------------------------------------------------------------------


def test_create_answers_202_with_location_and_the_queued_job(
    client: FlaskClient, user: User, headers: dict[str, str], db_session: Session
) -> None:
    response = client.post(
        JOBS,
        json={"type": "tasks.export", "params": {"format": "json", "tag": " work "}},
        headers=headers,
    )

    assert response.status_code == 202, response.json
    body = response.json
    assert response.headers["Location"] == f"{JOBS}/{body['id']}"
    assert body["type"] == "tasks.export"
    assert body["params"] == {"format": "json", "tag": "work"}  # validated and normalised
    assert (body["state"], body["progress"], body["attempts"]) == ("queued", 0, 0)
    assert body["owner_id"] == user.id
    assert body["error"] is None
    assert body["result"] is None
    assert body["result_url"] is None
    assert body["started_at"] is None
    # Recorded with the job, in its transaction: the run cannot be lost to a dead broker.
    assert events_named(db_session, "job.") == [
        ("job.created", {"job_id": body["id"], "owner_id": user.id, "type": "tasks.export"})
    ]


def test_create_defaults_the_export_format_and_accepts_a_bulk_update(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    export = client.post(JOBS, json={"type": "tasks.export"}, headers=headers)
    assert export.status_code == 202
    assert export.json["params"] == {"format": "csv"}
    bulk = client.post(
        JOBS,
        json={"type": "tasks.bulk_update", "params": {"action": "complete_overdue"}},
        headers=headers,
    )
    assert bulk.status_code == 202
    assert bulk.json["params"] == {"action": "complete_overdue", "filter": {}}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"type": "tasks.delete_everything"},
            {"type": ["Must be one of: tasks.export, tasks.import, tasks.bulk_update."]},
        ),
        ({}, {"type": ["Missing data for required field."]}),
        (
            {"type": "tasks.export", "params": {"format": "xlsx"}},
            {"params": {"format": ["Must be one of: csv, json."]}},
        ),
        (
            {"type": "tasks.export", "params": {"owner_id": 1}},
            {"params": {"owner_id": ["Unknown field."]}},
        ),
        (
            {"type": "tasks.bulk_update", "params": {"action": "set_status"}},
            {"params": {"status": ["Required by set_status."]}},
        ),
        (
            {"type": "tasks.bulk_update", "params": {"action": "delete"}},
            {"params": {"action": ["Must be one of: complete_overdue, set_status."]}},
        ),
        ({"type": "tasks.export", "state": "succeeded"}, {"state": ["Unknown field."]}),
        (
            {"type": "tasks.import"},
            {
                "type": [
                    "tasks.import takes a multipart/form-data upload with fields type and file."
                ]
            },
        ),
    ],
)
def test_create_refuses_unknown_types_and_bad_params_with_422(
    client: FlaskClient,
    headers: dict[str, str],
    db_session: Session,
    body: dict[str, Any],
    errors: dict[str, Any],
) -> None:
    response = client.post(JOBS, json=body, headers=headers)
    assert response.status_code == 422
    assert response.json["code"] == "validation_error"
    assert response.json["errors"] == {"json": errors}
    assert job_count(db_session) == 0


def test_create_refuses_a_body_that_is_neither_json_nor_multipart_with_415(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    response = client.post(
        JOBS, data="type=tasks.export", headers=headers, content_type="text/plain"
    )
    assert response.status_code == 415
    assert response.json["code"] == "unsupported_media_type"


def test_create_needs_a_token(client: FlaskClient) -> None:
    assert client.post(JOBS, json={"type": "tasks.export"}).status_code == 401


# --- POST /jobs as multipart (tasks.import) ------------------------------------------------------


def test_an_import_upload_is_stored_with_the_job(
    client: FlaskClient, headers: dict[str, str], db_session: Session
) -> None:
    content = b"title,tags\nWater plants,home\n"
    response = upload(client, headers, content, filename="mine.csv")

    assert response.status_code == 202, response.json
    assert response.json["type"] == "tasks.import"
    stored = db_session.scalars(select(JobFile).where(JobFile.job_id == response.json["id"])).one()
    assert (stored.kind, stored.filename, stored.size, stored.data) == (
        "input",
        "mine.csv",
        len(content),
        content,
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Tïtle\n".encode("latin-1"), "Not UTF-8 (byte 1)."),
        (b"", "The file is empty; the first row must name the columns (at least title)."),
        (
            b"name,colour\nx,y\n",
            "Unknown columns: name, colour. Use: title, description, status, priority, due_at, "
            "tags.",
        ),
        (b"description\nx\n", "The title column is missing."),
        (b"title,title\nx,y\n", "Columns named twice: title."),
    ],
)
def test_an_unusable_upload_is_a_422_naming_the_problem(
    client: FlaskClient, headers: dict[str, str], db_session: Session, content: bytes, message: str
) -> None:
    response = upload(client, headers, content)
    assert response.status_code == 422
    assert message in response.json["errors"]["form"]["file"]
    assert job_count(db_session) == 0


def test_an_upload_without_a_file_or_with_extra_fields_is_a_422(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    missing = client.post(
        JOBS, data={"type": "tasks.import"}, headers=headers, content_type="multipart/form-data"
    )
    assert missing.status_code == 422
    assert missing.json["errors"] == {"form": {"file": ["Missing data for required field."]}}
    not_a_file = client.post(
        JOBS,
        data={"type": "tasks.import", "file": "title\nx\n"},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert not_a_file.json["errors"] == {"form": {"file": ["Must be a file."]}}
    extra = upload(client, headers, b"title\nx\n", owner_id="1")
    assert extra.json["errors"] == {"form": {"owner_id": ["Unknown field."]}}
    wrong_type = upload(client, headers, b"title\nx\n", type="tasks.export")
    assert wrong_type.json["errors"] == {"form": {"type": ["Must be equal to tasks.import."]}}


def test_an_upload_over_the_job_limit_is_a_413(
    client: FlaskClient, headers: dict[str, str], db_session: Session
) -> None:
    content = b"title\n" + b"x" * 1_000_000  # JOB_MAX_UPLOAD_BYTES is 1,000,000
    response = upload(client, headers, content)
    assert response.status_code == 413
    assert response.json["message"] == "The file is larger than 1,000,000 bytes; split it."
    assert job_count(db_session) == 0


def test_a_request_over_max_content_length_is_a_413(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    response = upload(client, headers, b"title\n" + b"x" * (1024 * 1024))
    assert response.status_code == 413
    assert response.json["code"] == "payload_too_large"


# --- GET /jobs, GET /jobs/{id} -----------------------------------------------------------------


def test_list_shows_only_your_jobs_newest_first_and_filters(
    client: FlaskClient, user: User, other_user: User, headers: dict[str, str], db_session: Session
) -> None:
    export = make_job(db_session, user)
    bulk = make_job(db_session, user, "tasks.bulk_update", {"action": "complete_overdue"})
    make_job(db_session, other_user)
    run_job(export.id)

    everything = client.get(JOBS, headers=headers)
    assert everything.status_code == 200
    assert [item["id"] for item in everything.json["items"]] == [bulk.id, export.id]
    assert everything.json["meta"] == {"page": 1, "page_size": 20, "total": 2, "pages": 1}
    succeeded = client.get(f"{JOBS}?state=succeeded", headers=headers)
    assert [item["id"] for item in succeeded.json["items"]] == [export.id]
    bulk_only = client.get(f"{JOBS}?type=tasks.bulk_update&page_size=1", headers=headers)
    assert [item["id"] for item in bulk_only.json["items"]] == [bulk.id]
    assert client.get(f"{JOBS}?state=stuck", headers=headers).status_code == 422


def test_get_shows_progress_and_the_result_summary(
    client: FlaskClient, user: User, headers: dict[str, str], db_session: Session
) -> None:
    job = make_job(db_session, user, "tasks.import", csv_text="title,status\nGood,todo\n,todo\n")
    run_job(job.id)

    response = client.get(f"{JOBS}/{job.id}", headers=headers)

    assert response.status_code == 200
    body = response.json
    assert (body["state"], body["progress"], body["attempts"]) == ("succeeded", 100, 1)
    assert body["result"]["created"] == 1
    assert body["result"]["errors"] == [
        {"row": 3, "errors": {"title": ["Missing data for required field."]}}
    ]
    assert body["result_url"] is None  # an import makes no file


def test_another_users_job_is_not_found(
    client: FlaskClient, other_user: User, headers: dict[str, str], db_session: Session
) -> None:
    theirs = make_job(db_session, other_user)
    run_job(theirs.id)
    for method, path in (
        ("get", f"{JOBS}/{theirs.id}"),
        ("delete", f"{JOBS}/{theirs.id}"),
        ("get", f"{JOBS}/{theirs.id}/result"),
        ("get", f"{JOBS}/999999"),
    ):
        response = getattr(client, method)(path, headers=headers)
        assert response.status_code == 404, (method, path)
        assert response.json["code"] == "not_found"


# --- GET /jobs/{id}/result ---------------------------------------------------------------------


def test_the_result_is_a_409_until_the_job_has_succeeded(
    client: FlaskClient, user: User, headers: dict[str, str], db_session: Session
) -> None:
    job = make_job(db_session, user)
    response = client.get(f"{JOBS}/{job.id}/result", headers=headers)
    assert response.status_code == 409
    assert response.json["message"] == "The job is queued; its result exists once it has succeeded."


def test_the_result_downloads_as_an_attachment(
    client: FlaskClient, user: User, headers: dict[str, str], db_session: Session
) -> None:
    task = TaskFactory(owner=user, title="Write the report", tags=["work"])
    job = make_job(db_session, user)
    run_job(job.id)
    assert client.get(f"{JOBS}/{job.id}", headers=headers).json["result_url"] == (
        f"{JOBS}/{job.id}/result"
    )

    response = client.get(f"{JOBS}/{job.id}/result", headers=headers)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == f"attachment; filename=tasks-{job.id}.csv"
    assert response.headers["Cache-Control"] == "private, no-store"
    lines = response.get_data(as_text=True).splitlines()
    assert lines[0].startswith("id,title,description,status")
    assert lines[1].startswith(f"{task.id},Write the report,,todo,normal,,work,")


def test_an_expired_result_is_gone(
    client: FlaskClient, user: User, headers: dict[str, str], db_session: Session
) -> None:
    from app.jobs.sweep import purge_files

    job = make_job(db_session, user)
    run_job(job.id)
    purge_files(db_session, finished_before=utcnow() + timedelta(seconds=1), batch=10)
    response = client.get(f"{JOBS}/{job.id}/result", headers=headers)
    assert response.status_code == 410
    assert response.json["code"] == "gone"


# --- DELETE /jobs/{id} -------------------------------------------------------------------------


def test_cancelling_a_queued_job_cancels_it_at_once(
    client: FlaskClient, user: User, headers: dict[str, str], db_session: Session
) -> None:
    job = make_job(db_session, user, "tasks.import", csv_text="title\nx\n")

    response = client.delete(f"{JOBS}/{job.id}", headers=headers)

    assert response.status_code == 200
    assert response.json["state"] == "cancelled"
    assert response.json["finished_at"] is not None
    assert db_session.scalars(select(JobFile).where(JobFile.job_id == job.id)).all() == []
    assert [name for name, _ in events_named(db_session, "job.")] == [
        "job.created",
        "job.cancelled",
    ]
    assert run_job(job.id) == "not claimable"  # its message, still queued, finds nothing to do
    again = client.delete(f"{JOBS}/{job.id}", headers=headers)
    assert again.status_code == 200  # cancelling twice changes nothing
    assert len(events_named(db_session, "job.cancelled")) == 1


def test_cancelling_a_running_job_asks_it_to_stop(
    client: FlaskClient, user: User, headers: dict[str, str], db_session: Session
) -> None:
    job = make_job(db_session, user)
    db_session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(state="running", attempts=1, lease_until=utcnow() + timedelta(minutes=1))
    )
    db_session.commit()

    response = client.delete(f"{JOBS}/{job.id}", headers=headers)

    assert response.status_code == 202
    assert response.json["state"] == "running"
    assert response.json["cancel_requested_at"] is not None
    assert response.json["finished_at"] is None


@pytest.mark.parametrize("state", ["succeeded", "failed"])
def test_cancelling_a_finished_job_is_a_409(
    client: FlaskClient, user: User, headers: dict[str, str], db_session: Session, state: str
) -> None:
    job = make_job(db_session, user)
    db_session.execute(
        update(Job).where(Job.id == job.id).values(state=state, finished_at=utcnow())
    )
    db_session.commit()
    response = client.delete(f"{JOBS}/{job.id}", headers=headers)
    assert response.status_code == 409
    assert response.json["message"] == f"The job has already {state}; there is nothing to cancel."
