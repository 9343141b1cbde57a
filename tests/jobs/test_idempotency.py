"""``Idempotency-Key`` on ``POST /api/v1/jobs``: a retry returns the first job, never a second."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.idempotency.models import IdempotencyKey
from app.jobs.models import Job
from app.jobs.runner import run_job
from app.users.models import User
from tests.factories import auth_headers
from tests.jobs.helpers import events_named

JOBS = "/api/v1/jobs"
EXPORT = {"type": "tasks.export", "params": {"format": "csv", "status": "todo"}}


def keyed(user: User, key: str) -> dict[str, str]:
    """``user``'s Authorization header and ``key``."""
    return {**auth_headers(user), "Idempotency-Key": key}


def job_count(session: Session) -> int:
    """How many jobs exist."""
    return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def test_a_retry_with_the_same_key_and_body_returns_the_first_job(
    client: FlaskClient, user: User, db_session: Session
) -> None:
    headers = keyed(user, "9b2f4c1e-export-1")
    first = client.post(JOBS, json=EXPORT, headers=headers)
    assert first.status_code == 202
    assert "Idempotent-Replayed" not in first.headers

    # The same body with its keys in another order is the same request.
    retry = client.post(
        JOBS,
        json={"params": {"status": "todo", "format": "csv"}, "type": "tasks.export"},
        headers=headers,
    )

    assert retry.status_code == 202
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.headers["Location"] == first.headers["Location"]
    assert retry.json == first.json
    assert job_count(db_session) == 1
    assert len(events_named(db_session, "job.created")) == 1


def test_a_replay_shows_the_jobs_current_state(
    client: FlaskClient, user: User, db_session: Session
) -> None:
    headers = keyed(user, "export-then-run")
    first = client.post(JOBS, json=EXPORT, headers=headers)
    run_job(first.json["id"])

    retry = client.post(JOBS, json=EXPORT, headers=headers)

    assert retry.status_code == 202
    assert retry.json["id"] == first.json["id"]
    assert retry.json["state"] == "succeeded"


def test_the_same_key_with_another_body_is_a_422(
    client: FlaskClient, user: User, db_session: Session
) -> None:
    headers = keyed(user, "reused-key")
    assert client.post(JOBS, json=EXPORT, headers=headers).status_code == 202

    response = client.post(
        JOBS, json={"type": "tasks.export", "params": {"format": "json"}}, headers=headers
    )

    assert response.status_code == 422
    assert response.json["code"] == "idempotency_key_reused"
    assert "Idempotency-Key was already used with a different request" in response.json["message"]
    assert job_count(db_session) == 1


def test_keys_are_per_user(
    client: FlaskClient, user: User, other_user: User, db_session: Session
) -> None:
    mine = client.post(JOBS, json=EXPORT, headers=keyed(user, "shared-key"))
    theirs = client.post(JOBS, json=EXPORT, headers=keyed(other_user, "shared-key"))
    assert (mine.status_code, theirs.status_code) == (202, 202)
    assert mine.json["id"] != theirs.json["id"]
    assert theirs.json["owner_id"] == other_user.id
    assert "Idempotent-Replayed" not in theirs.headers


def test_a_failed_request_is_not_remembered(
    client: FlaskClient, user: User, db_session: Session
) -> None:
    headers = keyed(user, "first-try-invalid")
    bad = {"type": "tasks.export", "params": {"format": "xlsx"}}
    assert client.post(JOBS, json=bad, headers=headers).status_code == 422
    assert db_session.scalars(select(IdempotencyKey)).all() == []
    # The same key may then carry the corrected request.
    assert client.post(JOBS, json=EXPORT, headers=headers).status_code == 202


def test_the_key_is_stored_with_the_job_it_created(
    client: FlaskClient, user: User, db_session: Session
) -> None:
    response = client.post(JOBS, json=EXPORT, headers=keyed(user, "stored"))
    stored = db_session.scalars(select(IdempotencyKey)).one()
    assert (stored.user_id, stored.operation, stored.key) == (user.id, "createJob", "stored")
    assert stored.resource_id == str(response.json["id"])
    assert len(stored.fingerprint) == 64
    assert stored.expires_at - stored.created_at == timedelta(hours=24)


def test_an_expired_key_starts_afresh(client: FlaskClient, user: User, db_session: Session) -> None:
    headers = keyed(user, "yesterday")
    first = client.post(JOBS, json=EXPORT, headers=headers)
    db_session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    db_session.commit()

    again = client.post(JOBS, json=EXPORT, headers=headers)

    assert again.status_code == 202
    assert again.json["id"] != first.json["id"]
    assert "Idempotent-Replayed" not in again.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "ünïcode", "tab\tinside"])
def test_a_malformed_key_is_a_422(
    client: FlaskClient, user: User, db_session: Session, key: str
) -> None:
    response = client.post(JOBS, json=EXPORT, headers=keyed(user, key))
    assert response.status_code == 422
    assert response.json["errors"] == {
        "headers": {"Idempotency-Key": ["Must be 1 to 255 visible ASCII characters."]}
    }
    assert job_count(db_session) == 0


def test_a_key_of_255_visible_characters_is_accepted(client: FlaskClient, user: User) -> None:
    assert client.post(JOBS, json=EXPORT, headers=keyed(user, "~" * 255)).status_code == 202


def upload(client: FlaskClient, headers: dict[str, str], content: bytes) -> Any:
    """POST a tasks.import upload."""
    return client.post(
        JOBS,
        data={"type": "tasks.import", "file": (io.BytesIO(content), "tasks.csv", "text/csv")},
        headers=headers,
        content_type="multipart/form-data",
    )


def test_an_upload_retried_with_the_same_file_returns_the_first_job(
    client: FlaskClient, user: User, db_session: Session
) -> None:
    headers = keyed(user, "upload-1")
    first = upload(client, headers, b"title\nWater plants\n")
    retry = upload(client, headers, b"title\nWater plants\n")
    other_file = upload(client, headers, b"title\nFeed the cat\n")

    assert (first.status_code, retry.status_code) == (202, 202)
    assert retry.json["id"] == first.json["id"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert other_file.status_code == 422
    assert other_file.json["code"] == "idempotency_key_reused"
    assert job_count(db_session) == 1


def test_the_header_is_documented_on_the_operation(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").json
    parameters = spec["paths"][JOBS]["post"]["parameters"]
    assert [(item["in"], item["name"]) for item in parameters] == [("header", "Idempotency-Key")]
