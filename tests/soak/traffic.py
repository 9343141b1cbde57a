"""Mixed traffic: one thread per simulated user, each on its own keep-alive connection from its
own loopback address (so per-address limits apply per user, as with real clients).

Reads dominate (list and get tasks, follow jobs), with writes (create, patch with If-Match,
delete), logins and export jobs on a timer that fits production's limits. Every response is
checked: the status, the body (a task reads back as this client last wrote it), and for 429
and 503 the standard error shape. A "greedy" user asks for more than its per-user budget, so
the limiter's 429s show up (counted apart from errors).
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.factories import DEFAULT_PASSWORD

TASK_EVENTS = ["task.created", "task.updated", "task.completed", "task.deleted"]
STATUSES = ("todo", "in_progress", "done")
PRIORITIES = ("low", "normal", "high")
# Weights of the operations a user picks between its timed logins and jobs.
MIX = {
    "list_tasks": 34,
    "get_task": 28,
    "create_task": 12,
    "patch_task": 12,
    "delete_task": 6,
    "get_job": 5,
    "list_jobs": 3,
}
MAX_TASKS_PER_USER = 40

Check = Callable[[Any, dict[str, str]], str | None]


@dataclass(frozen=True)
class Sample:
    """One request as the client saw it."""

    at: float  # when it was sent, in seconds since the soak started
    op: str
    status: int  # 0: no response (connection error)
    seconds: float
    kind: str  # ok | rate_limited | unavailable | error
    detail: str = ""


@dataclass
class Recorder:
    """Every sample of every client, and the soak's clock."""

    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)

    def now(self) -> float:
        """Seconds since the soak started."""
        return time.monotonic() - self.started

    def add(self, sample: Sample) -> None:
        """Record one sample (list.append is atomic)."""
        self.samples.append(sample)


def error_shape(body: Any, status: int, code: str) -> str | None:
    """What is wrong with an error body, if anything ({code, status, message, request_id})."""
    if not isinstance(body, dict):
        return f"{status} without a JSON object body"
    if body.get("code") != code or body.get("status") != status:
        return f"{status} with code={body.get('code')!r} status={body.get('status')!r}"
    if not isinstance(body.get("message"), str) or not isinstance(body.get("request_id"), str):
        return f"{status} without message or request_id"
    return None


def classify(
    status: int, headers: dict[str, str], body: Any, expected: tuple[int, ...], check: Check | None
) -> tuple[str, str]:
    """(kind, detail) of a response."""
    if status in expected:
        problem = check(body, headers) if check else None
        return ("error", f"wrong body: {problem}") if problem else ("ok", "")
    if status == 429:
        problem = error_shape(body, 429, "rate_limited")
        if problem is None and not headers.get("retry-after"):
            problem = "429 without Retry-After"
        return ("error", problem) if problem else ("rate_limited", "")
    if status == 503:
        problem = error_shape(body, 503, "service_unavailable")
        if problem is None and not headers.get("retry-after"):
            problem = "503 without Retry-After"
        return ("error", problem) if problem else ("unavailable", "")
    if isinstance(body, dict):
        errors = json.dumps(body.get("errors"), sort_keys=True)[:120] if body.get("errors") else ""
        return "error", f"unexpected {status} ({body.get('code')}) {errors}".rstrip()
    return "error", f"unexpected {status}"


class Client(threading.Thread):
    """A user: registers, logs in, optionally subscribes a webhook, then loops until stopped."""

    def __init__(
        self,
        number: int,
        *,
        port: int,
        recorder: Recorder,
        stop: threading.Event,
        rate: float,
        webhook_url: str | None = None,
        login_every: float = 30.0,
        job_every: float = 60.0,
        greedy: bool = False,
    ) -> None:
        super().__init__(name=f"client-{number}", daemon=True)
        self.number = number
        self.address = f"127.0.0.{10 + number}"
        self.email = f"soak{number}-{uuid.uuid4().hex[:6]}@example.com"
        self.port = port
        self.recorder = recorder
        self.stop_event = stop
        self.rate = rate
        self.webhook_url = webhook_url
        self.login_every = login_every
        self.job_every = job_every
        self.greedy = greedy
        self.random = random.Random(number)
        self.connection: http.client.HTTPConnection | None = None
        self.token = ""
        self.user_id = 0
        self.webhook_id: str | None = None
        self.tasks: dict[int, tuple[str, str, str]] = {}  # id -> (title, status, etag)
        self.doubtful: set[int] = set()  # a write whose outcome is unknown (503, no answer)
        self.jobs: list[int] = []
        self.written = 0

    # -- HTTP --------------------------------------------------------------------------------

    def exchange(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        """One request on the kept-alive connection (reopened after an error or a close)."""
        all_headers = {"Accept": "application/json", **(headers or {})}
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        if self.connection is None:
            self.connection = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=60, source_address=(self.address, 0)
            )
        try:
            self.connection.request(method, path, body=data, headers=all_headers)
            response = self.connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = None
            raise
        answer = {name.lower(): value for name, value in response.getheaders()}
        if response.will_close:
            self.connection.close()
            self.connection = None
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw[:200]
        return response.status, answer, parsed

    def call(
        self,
        op: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        expected: tuple[int, ...] = (200,),
        check: Check | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[str, int, dict[str, str], Any]:
        """Send, classify, record; (kind, status, headers, body)."""
        at = self.recorder.now()
        begin = time.perf_counter()
        try:
            status, answer, parsed = self.exchange(method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            detail = f"connection error: {type(exc).__name__}: {exc}"[:200]
            self.recorder.add(Sample(at, op, 0, time.perf_counter() - begin, "error", detail))
            return "error", 0, {}, None
        kind, detail = classify(status, answer, parsed, expected, check)
        self.recorder.add(Sample(at, op, status, time.perf_counter() - begin, kind, detail))
        return kind, status, answer, parsed

    # -- set-up ------------------------------------------------------------------------------

    def set_up(self) -> None:
        """Register, log in, subscribe the webhook; raises if any of it fails (before the soak)."""
        credentials = {"email": self.email, "password": DEFAULT_PASSWORD}
        status, _, body = self.exchange("POST", "/api/v1/auth/register", credentials)
        assert status == 201, (status, body)
        self.user_id = int(body["id"])
        status, _, body = self.exchange("POST", "/api/v1/auth/login", credentials)
        assert status == 200, (status, body)
        self.token = body["access_token"]
        if self.webhook_url:
            hook = {"url": self.webhook_url, "event_types": TASK_EVENTS}
            status, _, body = self.exchange("POST", "/api/v1/webhooks", hook)
            assert status == 201, (status, body)
            self.webhook_id = str(body["id"])

    # -- operations --------------------------------------------------------------------------

    def login(self) -> None:
        """Log in again: a new token pair (argon2 with production's cost)."""
        credentials = {"email": self.email, "password": DEFAULT_PASSWORD}
        kind, _, _, body = self.call(
            "login", "POST", "/api/v1/auth/login", credentials, check=has_token
        )
        if kind == "ok":
            self.token = body["access_token"]

    def list_tasks(self) -> None:
        """A page of my newest tasks: all mine."""
        owner = self.user_id
        self.call(
            "list_tasks",
            "GET",
            "/api/v1/tasks?page_size=20&sort=-created_at",
            check=lambda body, _h: page_problem(body, owner),
        )

    def pick(self) -> int | None:
        return self.random.choice(list(self.tasks)) if self.tasks else None

    def get_task(self, task_id: int | None = None, *, op: str = "get_task") -> None:
        """Read a task back: as I last wrote it (unless that write's outcome is unknown)."""
        task_id = task_id if task_id is not None else self.pick()
        if task_id is None:
            return self.create_task()
        doubtful = task_id in self.doubtful
        known = self.tasks.get(task_id)
        expected = (200, 404) if doubtful else (200,)

        def check(body: Any, headers: dict[str, str]) -> str | None:
            if isinstance(body, dict) and body.get("code") == "not_found":
                return None  # a doubtful task's delete went through after all
            if doubtful or known is None:
                return None if body.get("id") == task_id else f"asked {task_id}, got {body}"
            return task_problem(body, task_id, known[0], known[1])

        kind, status, headers, body = self.call(
            op, "GET", f"/api/v1/tasks/{task_id}", expected=expected, check=check
        )
        if kind == "ok" and status == 404:
            self.tasks.pop(task_id, None)
            self.doubtful.discard(task_id)
        elif kind == "ok":
            self.tasks[task_id] = (body["title"], body["status"], headers.get("etag", ""))
            self.doubtful.discard(task_id)
        return None

    def create_task(self) -> None:
        """Create a task (half of them with an Idempotency-Key)."""
        self.written += 1
        title = f"soak {self.number}-{self.written}"
        body = {
            "title": title,
            "priority": self.random.choice(PRIORITIES),
            "tags": ["soak", f"user{self.number}"],
        }
        headers = {"Idempotency-Key": uuid.uuid4().hex} if self.written % 2 else {}
        kind, _, answer_headers, answer = self.call(
            "create_task",
            "POST",
            "/api/v1/tasks",
            body,
            expected=(201,),
            check=lambda got, h: task_problem(got, None, title, "todo", h),
            headers=headers,
        )
        if kind == "ok":
            self.tasks[answer["id"]] = (title, "todo", answer_headers["etag"])

    def patch_task(self) -> None:
        """Change a task's title and status, conditionally on the version I hold."""
        task_id = self.pick()
        if task_id is None or task_id in self.doubtful:
            return self.get_task(task_id) if task_id is not None else self.create_task()
        self.written += 1
        title = f"soak {self.number}-{self.written} (edited)"
        status = self.random.choice(STATUSES)
        kind, _, headers, _ = self.call(
            "patch_task",
            "PATCH",
            f"/api/v1/tasks/{task_id}",
            {"title": title, "status": status},
            check=lambda got, _h: task_problem(got, task_id, title, status),
            headers={"If-Match": self.tasks[task_id][2]},
        )
        if kind == "ok":
            self.tasks[task_id] = (title, status, headers.get("etag", ""))
        elif kind in {"unavailable", "error"}:
            self.doubtful.add(task_id)
        return None

    def delete_task(self) -> None:
        """Delete a task, conditionally on the version I hold."""
        task_id = self.pick()
        if task_id is None or task_id in self.doubtful:
            return self.get_task(task_id) if task_id is not None else self.create_task()
        kind, _, _, _ = self.call(
            "delete_task",
            "DELETE",
            f"/api/v1/tasks/{task_id}",
            expected=(204,),
            headers={"If-Match": self.tasks[task_id][2]},
        )
        if kind == "ok":
            self.tasks.pop(task_id)
        elif kind in {"unavailable", "error"}:
            self.doubtful.add(task_id)
        return None

    def create_job(self) -> None:
        """Start an export of my tasks (a file the worker writes)."""
        kind, _, _, body = self.call(
            "create_job",
            "POST",
            "/api/v1/jobs",
            {"type": "tasks.export", "params": {"format": "csv"}},
            expected=(202,),
            check=lambda got, h: (
                job_problem(got, None) or (None if h.get("location") else "no Location")
            ),
        )
        if kind == "ok":
            self.jobs.append(int(body["id"]))

    def get_job(self) -> None:
        """Follow one of my jobs."""
        if not self.jobs:
            return self.list_jobs()
        job_id = self.random.choice(self.jobs[-5:])
        self.call(
            "get_job",
            "GET",
            f"/api/v1/jobs/{job_id}",
            check=lambda got, _h: job_problem(got, job_id),
        )
        return None

    def list_jobs(self) -> None:
        """My jobs, newest first."""
        owner = self.user_id
        self.call(
            "list_jobs",
            "GET",
            "/api/v1/jobs?page_size=10",
            check=lambda b, _h: page_problem(b, owner),
        )

    # -- the loop ----------------------------------------------------------------------------

    def next_operation(self) -> Callable[[], None]:
        if self.greedy:
            return self.list_tasks
        names = list(MIX)
        name = self.random.choices(names, weights=[MIX[n] for n in names])[0]
        if name == "create_task" and len(self.tasks) >= MAX_TASKS_PER_USER:
            name = "delete_task"
        operation: Callable[[], None] = getattr(self, name)
        return operation

    def run(self) -> None:
        """Paced at ``rate`` requests per second (no catch-up burst) until stopped."""
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        next_login = next_at + self.random.uniform(0, self.login_every)
        next_job = next_at + self.random.uniform(0, self.job_every)
        while not self.stop_event.is_set():
            now = time.monotonic()
            if not self.greedy and now >= next_login:
                next_login = now + self.login_every
                self.login()
            elif not self.greedy and now >= next_job:
                next_job = now + self.job_every
                self.create_job()
            else:
                self.next_operation()()
            next_at = max(next_at + interval * self.random.uniform(0.5, 1.5), time.monotonic() - 1)
            self.stop_event.wait(max(0.0, next_at - time.monotonic()))
        if self.connection is not None:
            self.connection.close()


def has_token(body: Any, _headers: dict[str, str]) -> str | None:
    """A login's answer carries an access token."""
    ok = isinstance(body, dict) and isinstance(body.get("access_token"), str)
    return None if ok else "no access_token"


def page_problem(body: Any, owner_id: int) -> str | None:
    """A page of items, every one the caller's."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return "not a page"
    if not isinstance(body.get("meta", {}).get("total"), int):
        return "page without meta.total"
    strangers = [item.get("id") for item in body["items"] if item.get("owner_id") != owner_id]
    return f"someone else's items {strangers}" if strangers else None


def task_problem(
    body: Any,
    task_id: int | None,
    title: str,
    status: str,
    headers: dict[str, str] | None = None,
) -> str | None:
    """The task has this id, title and status (and a created one its ETag and Location)."""
    if not isinstance(body, dict):
        return "not a task"
    if task_id is not None and body.get("id") != task_id:
        return f"id {body.get('id')} instead of {task_id}"
    if body.get("title") != title or body.get("status") != status:
        return (
            f"read ({body.get('title')!r}, {body.get('status')!r}), wrote ({title!r}, {status!r})"
        )
    if headers is not None and not (headers.get("etag") and headers.get("location")):
        return "created without ETag or Location"
    return None


def job_problem(body: Any, job_id: int | None) -> str | None:
    """A job of mine, an export, in a known state."""
    if not isinstance(body, dict) or not isinstance(body.get("id"), int):
        return "not a job"
    if job_id is not None and body["id"] != job_id:
        return f"job {body['id']} instead of {job_id}"
    if body.get("type") != "tasks.export":
        return f"job of type {body.get('type')!r}"
    if body.get("state") not in {"queued", "running", "succeeded", "failed", "cancelled"}:
        return f"job in state {body.get('state')!r}"
    return None
