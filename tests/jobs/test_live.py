"""End to end: jobs created over real HTTP, run by a real Celery worker on real Redis.

Lifecycle with progress and a downloadable result, per-row import errors, a clear error for a
failing job, cancelling a long import, a SIGKILLed worker's job resumed by the beat sweep without
a row imported twice, and concurrent requests with one Idempotency-Key.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from app.core.database import utcnow
from app.events import service as events
from app.extensions import db
from app.jobs.models import Job
from app.tasks.models import Task
from tests.factories import DEFAULT_PASSWORD
from tests.support.live import wait_for

pytestmark = pytest.mark.slow

FINAL = {"succeeded", "failed", "cancelled"}
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def send(
    stack: Any,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    content_type: str | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request over real HTTP; (status, headers, raw body)."""
    request = urllib.request.Request(f"{stack.base_url}/api/v1{path}", method=method, data=body)
    if content_type:
        request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with _NO_PROXY.open(request, timeout=15) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def call(
    stack: Any, method: str, path: str, payload: Any = None, token: str | None = None, **kw: Any
) -> tuple[int, Any]:
    """A JSON request; (status, JSON body)."""
    body = None if payload is None else json.dumps(payload).encode()
    status, _, raw = send(
        stack,
        method,
        path,
        body=body,
        content_type="application/json" if body else None,
        token=token,
        **kw,
    )
    return status, json.loads(raw) if raw else None


def upload(stack: Any, token: str, content: str) -> tuple[int, Any]:
    """POST a tasks.import multipart upload; (status, JSON body)."""
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="type"\r\n\r\n'
        "tasks.import\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="tasks.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
        f"{content}\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    status, _, raw = send(
        stack,
        "POST",
        "/jobs",
        body=body,
        content_type=f"multipart/form-data; boundary={boundary}",
        token=token,
    )
    return status, json.loads(raw)


def sign_up(stack: Any, email: str = "jobs@example.com") -> str:
    """Register and log in through the API; an access token."""
    credentials = {"email": email, "password": DEFAULT_PASSWORD}
    assert call(stack, "POST", "/auth/register", credentials)[0] == 201
    status, tokens = call(stack, "POST", "/auth/login", credentials)
    assert status == 200
    return str(tokens["access_token"])


def follow(stack: Any, token: str, job_id: int, timeout: float = 60) -> list[dict[str, Any]]:
    """Poll the job until it is final; every distinct (state, progress) seen, in order."""
    seen: list[dict[str, Any]] = []

    def final() -> bool:
        status, job = call(stack, "GET", f"/jobs/{job_id}", token=token)
        assert status == 200
        if not seen or (seen[-1]["state"], seen[-1]["progress"]) != (job["state"], job["progress"]):
            seen.append(job)
        return job["state"] in FINAL

    wait_for(final, timeout, f"job {job_id} to finish", interval=0.02)
    return seen


def task_count(stack: Any) -> int:
    """Tasks in the stack's database."""
    with stack.app.app_context():
        db.session.remove()
        return int(db.session().scalar(select(func.count()).select_from(Task)) or 0)


def test_an_export_goes_queued_running_succeeded_and_its_csv_downloads(
    make_live_stack: Any,
) -> None:
    stack = make_live_stack(JOB_BATCH_SIZE="5")
    stack.start_worker()
    token = sign_up(stack)
    created = []
    for n in range(23):
        status, task = call(stack, "POST", "/tasks", {"title": f"Task {n}", "tags": ["t"]}, token)
        assert status == 201
        created.append(task)

    status, job = call(stack, "POST", "/jobs", {"type": "tasks.export"}, token)
    assert status == 202
    assert (job["state"], job["progress"]) == ("queued", 0)
    history = follow(stack, token, job["id"])

    final = history[-1]
    assert (final["state"], final["progress"], final["attempts"]) == ("succeeded", 100, 1)
    assert final["error"] is None
    assert final["started_at"] <= final["finished_at"]
    states = [entry["state"] for entry in history]
    assert states == sorted(states, key=["queued", "running", "succeeded"].index)
    progress = [entry["progress"] for entry in history]
    assert progress == sorted(progress)

    status, headers, raw = send(
        stack, "GET", final["result_url"].removeprefix("/api/v1"), token=token
    )
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == f"attachment; filename=tasks-{job['id']}.csv"
    rows = list(csv.DictReader(io.StringIO(raw.decode(), newline="")))
    assert [(int(row["id"]), row["title"], row["tags"]) for row in rows] == [
        (task["id"], task["title"], "t") for task in created
    ]
    with stack.app.app_context():
        db.session.remove()
        names = db.session().scalars(
            select(events.OutboxEvent.name).where(events.OutboxEvent.name.like("job.%"))
        )
        assert sorted(names) == ["job.created", "job.succeeded"]


def test_an_import_creates_the_good_rows_and_reports_the_bad_ones(make_live_stack: Any) -> None:
    stack = make_live_stack()
    stack.start_worker()
    token = sign_up(stack)
    content = (
        "title,status,due_at,tags\n"
        "Water plants,todo,2030-01-31T17:00:00Z,home\n"
        ",todo,,\n"
        "Pay rent,done,,home;money\n"
        "Call mum,sleeping,,\n"
    )

    status, job = upload(stack, token, content)
    assert status == 202, job
    final = follow(stack, token, job["id"])[-1]

    assert final["state"] == "succeeded"
    assert final["result"]["created"] == 2
    assert final["result"]["failed"] == 2
    assert final["result"]["errors"] == [
        {"row": 3, "errors": {"title": ["Missing data for required field."]}},
        {"row": 5, "errors": {"status": ["Must be one of: todo, in_progress, done."]}},
    ]
    status, page = call(stack, "GET", "/tasks?sort=created_at", token=token)
    assert [(task["title"], task["status"], task["tags"]) for task in page["items"]] == [
        ("Water plants", "todo", ["home"]),
        ("Pay rent", "done", ["home", "money"]),
    ]


def test_a_job_that_fails_ends_failed_with_a_clear_error(make_live_stack: Any) -> None:
    stack = make_live_stack()
    stack.start_worker()
    token = sign_up(stack)
    status, me = call(stack, "GET", "/users/me", token=token)
    assert status == 200
    # Parameters stored before a later release stopped accepting them: the API would refuse
    # them today, the worker meets them anyway.
    with stack.app.app_context():
        session = db.session()
        job = Job(
            owner_id=me["id"], type="tasks.export", params={"format": "xlsx"}, created_at=utcnow()
        )
        session.add(job)
        session.flush()
        events.record(session, events.JOB_CREATED, {"job_id": job.id, "owner_id": me["id"]})
        session.commit()
        job_id = job.id
        db.session.remove()

    final = follow(stack, token, job_id)[-1]

    assert final["state"] == "failed"
    assert final["error"] == "The job's parameters are invalid: format: Must be one of: csv, json."
    status, _ = call(stack, "GET", f"/jobs/{job_id}/result", token=token)
    assert status == 409


def csv_of(rows: int) -> str:
    """A CSV file of ``rows`` tasks with distinct titles."""
    return "title\n" + "".join(f"Imported {n}\n" for n in range(rows))


def test_cancelling_a_long_running_import_stops_it_between_batches(make_live_stack: Any) -> None:
    stack = make_live_stack(JOB_BATCH_SIZE="5")
    stack.start_worker()
    token = sign_up(stack)
    status, job = upload(stack, token, csv_of(3000))
    assert status == 202

    def started() -> bool:
        state = call(stack, "GET", f"/jobs/{job['id']}", token=token)[1]
        assert state["state"] in {"queued", "running"}, state
        return state["state"] == "running" and state["progress"] > 0

    wait_for(started, 30, "the import to make progress")
    status, cancelling = call(stack, "DELETE", f"/jobs/{job['id']}", token=token)
    assert status == 202
    assert cancelling["cancel_requested_at"] is not None
    final = follow(stack, token, job["id"])[-1]

    assert final["state"] == "cancelled"
    assert final["error"] is None
    created = final["result"]["created"]
    assert 0 < created < 3000
    assert created % 5 == 0  # it stopped at a batch boundary
    assert task_count(stack) == created  # what the summary says is exactly what was committed


def test_a_killed_workers_job_is_resumed_by_the_sweep_without_importing_a_row_twice(
    make_live_stack: Any,
) -> None:
    stack = make_live_stack(
        JOB_BATCH_SIZE="5",
        JOB_LEASE_SECONDS="2",
        JOB_SWEEP_INTERVAL_SECONDS="0.5",
        JOB_QUEUED_GRACE_SECONDS="0",
        JOB_MAX_ATTEMPTS="10",  # a loaded machine may cost a run its lease once more
    )
    worker = stack.start_worker()
    token = sign_up(stack)
    status, job = upload(stack, token, csv_of(600))
    assert status == 202

    def halfway() -> bool:
        state = call(stack, "GET", f"/jobs/{job['id']}", token=token)[1]
        assert state["state"] != "succeeded", "the import finished before the worker was killed"
        return state["progress"] >= 10

    wait_for(halfway, 30, "the import to make progress")
    worker.kill()
    progress_at_kill = call(stack, "GET", f"/jobs/{job['id']}", token=token)[1]["progress"]
    stack.start_worker(name="second-worker")
    stack.start_beat()
    final = follow(stack, token, job["id"])[-1]

    assert final["state"] == "succeeded"
    assert final["attempts"] >= 2  # the killed run, then the one the sweep started
    assert 10 <= progress_at_kill < 100
    assert final["result"]["created"] == 600
    with stack.app.app_context():
        db.session.remove()
        session = db.session()
        assert session.scalar(select(func.count()).select_from(Task)) == 600
        distinct = select(func.count(func.distinct(Task.title)))
        assert session.scalar(distinct) == 600


def test_concurrent_requests_with_one_key_create_one_job(make_live_stack: Any) -> None:
    stack = make_live_stack()
    token = sign_up(stack)
    start = threading.Barrier(8)
    results: list[tuple[int, Any]] = []

    def post() -> None:
        start.wait()
        results.append(
            call(
                stack,
                "POST",
                "/jobs",
                {"type": "tasks.export"},
                token,
                headers={"Idempotency-Key": "same-key"},
            )
        )

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(status for status, _ in results)
    assert set(statuses) <= {202, 409}, results
    accepted = {body["id"] for status, body in results if status == 202}
    assert len(accepted) == 1
    with stack.app.app_context():
        db.session.remove()
        assert db.session().scalar(select(func.count()).select_from(Job)) == 1
