"""Directed cases: the documented statuses random data does not reach (a stale ETag, a used
Idempotency-Key, a full webhook quota, a finished job...), each sent through schemathesis and
checked against the document like any generated case."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import requests
from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.extensions import db
from app.idempotency.models import IdempotencyKey
from app.jobs.models import Job, JobFile
from app.users.models import User
from app.users.reset_service import issue_reset_token
from tests.contract.support import (
    PASSWORD,
    RECEIVER_NETLOC,
    Accounts,
    Observations,
    operations,
)
from tests.support.live import LiveStack, wait_for
from tests.support.openapi_bodies import valid_body

JSON = "application/json"


class Directed:
    """Calls operations by operationId on the live stack and checks each response."""

    def __init__(
        self,
        schema: Any,
        stack: LiveStack,
        accounts: Accounts,
        observations: Observations,
        excluded_checks: list[Any] | None = None,
    ) -> None:
        self.excluded_checks = excluded_checks or []
        self.schema = schema
        self.stack = stack
        self.accounts = accounts
        self.observations = observations

    def call(
        self,
        operation: str,
        expect: int,
        *,
        role: str | None = "user",
        headers: dict[str, str] | None = None,
        raw_body: bytes | None = None,
        content_type: str | None = None,
        **parts: Any,
    ) -> Any:
        """Send ``operation`` (``parts``: path_parameters, query, body, media_type) and check the
        response against the document; it must have status ``expect``.

        ``raw_body`` sends those bytes instead of a serialised body (malformed JSON, a body of
        another media type); the response is still checked against the document.
        """
        case = self.schema.find_operation_by_id(operation).Case(**parts)
        sent = {**(self.accounts.headers(role) if role else {}), **(headers or {})}
        if raw_body is None:
            response = case.call_and_validate(
                base_url=self.stack.base_url, headers=sent, excluded_checks=self.excluded_checks
            )
        else:
            url = self.stack.base_url + case.formatted_path
            sent["Content-Type"] = content_type or "application/json"
            response = requests.request(
                case.method, url, data=raw_body, headers=sent, params=case.query, timeout=30
            )
            case.validate_response(response, headers=sent, excluded_checks=self.excluded_checks)
        self.observations.record("directed", operation, response.status_code)
        assert response.status_code == expect, (operation, response.status_code, response.text)
        return response

    def stack_settings(self, name: str) -> Any:
        """A setting of the stack's app."""
        assert self.stack.app is not None
        return getattr(self.stack.app.extensions["settings"], name)

    def create_task(self, role: str = "user") -> dict[str, Any]:
        """A new task of ``role``'s account."""
        return dict(self.call("createTask", 201, role=role, body={"title": "Directed"}).json())

    def in_database(self, action: Callable[[Session], Any]) -> Any:
        """Run ``action`` with a session of the stack's app and commit."""
        assert self.stack.app is not None
        with self.stack.app.app_context():
            try:
                result = action(db.session())
                db.session.commit()
                return result
            finally:
                db.session.remove()


def conditional_requests(directed: Directed) -> None:
    """A current ETag answers 304; a stale one refuses the write with 412."""
    task = directed.create_task()
    path = {"task_id": task["id"]}
    read = directed.call("getTask", 200, path_parameters=path)
    directed.call("getTask", 304, path_parameters=path, headers={"If-None-Match": etag(read)})
    listed = directed.call("listTasks", 200)
    directed.call("listTasks", 304, headers={"If-None-Match": etag(listed)})
    stale = {"If-Match": '"999"'}
    directed.call("deleteTask", 412, path_parameters=path, headers=stale)
    directed.call("updateTask", 412, path_parameters=path, headers=stale, body={"title": "New"})
    directed.call("replaceTask", 412, path_parameters=path, headers=stale, body={"title": "New"})
    directed.call("deleteTask", 204, path_parameters=path, headers={"If-Match": etag(read)})


def idempotency_key_in_progress(directed: Directed) -> None:
    """A key whose first request has not finished is a 409 for the same request, on every
    operation that takes an Idempotency-Key (with a valid body of the document's examples)."""
    document = directed.schema.raw_schema
    idempotent = [
        operation
        for _path, operation in operations(document)
        if "Idempotency-Key" in parameter_names(operation)
    ]
    assert {operation["operationId"] for operation in idempotent} >= {"createTask", "createJob"}
    for operation in idempotent:
        [status] = [int(status) for status in operation["responses"] if status.startswith("2")]
        body = valid_body(document, operation)
        name = operation["operationId"]
        key = {"Idempotency-Key": f"directed-{uuid.uuid4().hex}"}
        directed.call(name, status, headers=key, body=body, media_type=JSON)
        directed.call(name, status, headers=key, body=body, media_type=JSON)  # replayed
        directed.in_database(
            lambda session, key=key: session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.key == key["Idempotency-Key"])
                .values(resource_id=None)
            )
        )
        directed.call(name, 409, headers=key, body=body, media_type=JSON)


def upload_over_the_limit(directed: Directed) -> None:
    """An import file over JOB_MAX_UPLOAD_BYTES is a 413."""
    limit = directed.stack_settings("JOB_MAX_UPLOAD_BYTES")
    directed.call(
        "createJob",
        413,
        body={"type": "tasks.import", "file": b"title\n" + b"x" * limit},
        media_type="multipart/form-data",
    )


def job_lifecycle(directed: Directed) -> None:
    """An export succeeds (its file downloads), is not cancellable then, and its file expires
    (410); a running job's cancel is accepted (202)."""
    export = {"type": "tasks.export", "params": {}}
    job = directed.call("createJob", 202, body=export, media_type=JSON).json()
    path = {"job_id": job["id"]}
    wait_for(
        lambda: directed.call("getJob", 200, path_parameters=path).json()["state"] == "succeeded",
        30,
        "the export to succeed",
    )
    directed.call("downloadJobResult", 200, path_parameters=path)
    directed.call("cancelJob", 409, path_parameters=path)
    directed.in_database(
        lambda session: session.execute(delete(JobFile).where(JobFile.job_id == job["id"]))
    )
    directed.call("downloadJobResult", 410, path_parameters=path)

    # Jobs written straight to the database, with no message for the worker: they stay as made.
    owner = directed.accounts.user_id("user")
    running = directed.in_database(lambda session: _job(session, owner_id=owner, running=True))
    directed.call("cancelJob", 202, path_parameters={"job_id": running})
    queued = {"job_id": directed.in_database(lambda session: _job(session, owner_id=owner))}
    directed.call("getJob", 200, path_parameters=queued)
    directed.call("downloadJobResult", 409, path_parameters=queued)
    directed.call("cancelJob", 200, path_parameters=queued)


def _job(session: Session, *, owner_id: int, running: bool = False) -> int:
    job = Job(owner_id=owner_id, type="tasks.export", params={"format": "csv"})
    if running:
        job.state = "running"
        job.attempts = 1
        job.started_at = utcnow()
        job.lease_until = utcnow() + timedelta(hours=1)
    session.add(job)
    session.flush()
    return job.id


def webhook_redelivery(directed: Directed) -> None:
    """A delivery is replayed (202); not while its webhook is paused (409)."""
    webhook = directed.call(
        "createWebhook",
        201,
        body={"url": f"http://{RECEIVER_NETLOC}/hook", "event_types": ["task.created"]},
    ).json()
    directed.create_task()
    path = {"webhook_id": webhook["id"]}
    delivery = wait_for(
        lambda: directed.call("listWebhookDeliveries", 200, path_parameters=path).json()["items"],
        30,
        "the task.created delivery",
    )[0]
    both = {**path, "delivery_id": delivery["id"]}
    directed.call("redeliverWebhookDelivery", 202, path_parameters=both)
    directed.call("updateWebhook", 200, path_parameters=path, body={"is_active": False})
    directed.call("redeliverWebhookDelivery", 409, path_parameters=both)


def password_reset(directed: Directed) -> None:
    """An emailed reset token sets a new password once (204), then is refused (400)."""
    user_id = directed.accounts.user_id("user")

    def issue(session: Session) -> str:
        user = session.get(User, user_id)
        return issue_reset_token(session, user=user, ttl=timedelta(minutes=5))[1]

    token = directed.in_database(issue)
    body = {"token": token, "new_password": PASSWORD}
    directed.call("confirmPasswordReset", 204, role=None, body=body)
    directed.call("confirmPasswordReset", 400, role=None, body=body)
    directed.accounts.spoil("user")  # the reset ended every session of the account


def administration(directed: Directed) -> None:
    """An administrator changes a user (200), not their own role (409)."""
    user_id = directed.accounts.user_id("user")
    directed.call(
        "updateUser",
        200,
        role="admin",
        path_parameters={"user_id": user_id},
        body={"full_name": "Fuzz"},
    )
    admin_id = directed.accounts.user_id("admin")
    directed.call(
        "updateUser",
        409,
        role="admin",
        path_parameters={"user_id": admin_id},
        body={"role": "user"},
    )


def parameter_names(operation: dict[str, Any]) -> set[str]:
    """The names of an operation's parameters (path, query and headers)."""
    return {parameter["name"] for parameter in operation.get("parameters", [])}


def etag(response: Any) -> str:
    """The ETag header of a schemathesis response."""
    value = response.headers["etag"]
    return str(value[0] if isinstance(value, list) else value)


DIRECTED: list[Callable[[Directed], None]] = [
    conditional_requests,
    idempotency_key_in_progress,
    upload_over_the_limit,
    job_lifecycle,
    webhook_redelivery,
    password_reset,
    administration,
]
