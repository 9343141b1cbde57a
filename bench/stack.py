"""What the benchmark runs against: its own database and Redis prefix, seeded data, and the
processes (gunicorn, Celery) started and stopped by pid.

The database is a throwaway one on the machine's PostgreSQL (or on one started for the run when
none answers), created, migrated and dropped by the test suite's ``migrated_database``; Redis
keys carry a prefix of their own, deleted at the end. Nothing else on either server is read or
written.
"""

# ruff: noqa: S603 - starts the services and calls them on loopback
from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.config import RATE_LIMIT_SETTINGS  # noqa: E402
from bench.load import children_of  # noqa: E402
from tests.support.database import insert_user, migrated_database  # noqa: E402
from tests.support.edge import http_request  # noqa: E402
from tests.support.live import Process  # noqa: E402
from tests.support.services import ensure_postgres, ensure_redis, free_port  # noqa: E402

GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
VENV_BIN = Path(sys.executable).parent
PASSWORD = "bench-password-1234"  # a throwaway account in a throwaway database
READER_EMAIL = "reader@bench.invalid"
WRITER_EMAIL = "writer@bench.invalid"
USER_TASKS = 10_000
# Limits nobody reaches: the limiter still counts every request in Redis, as in production.
HIGH_LIMIT = "100000000/minute"


@dataclass
class Stack:
    """The database, Redis and settings one benchmark run uses."""

    database_url: str
    database_name: str
    redis_url: str
    key_prefix: str
    workdir: Path
    workers: int
    threads: int
    env: dict[str, str] = field(default_factory=dict)
    reader_id: int = 0
    writer_id: int = 0
    first_task_id: int = 0
    last_task_id: int = 0

    def engine(self) -> sa.Engine:
        """A connection to the benchmark database (no pool kept)."""
        return sa.create_engine(self.database_url, poolclass=sa.NullPool)

    def redis(self) -> redis.Redis:
        """A client of the benchmark's Redis."""
        return redis.Redis.from_url(self.redis_url)


@contextlib.contextmanager
def open_stack(workdir: Path, *, workers: int, threads: int) -> Iterator[Stack]:
    """A migrated throwaway database and a Redis prefix; both removed afterwards."""
    server_url = ensure_postgres()
    redis_url = ensure_redis()
    with migrated_database(server_url, prefix="tmpl_bench") as rendered:
        prefix = f"bench-{secrets.token_hex(4)}:"
        stack = Stack(
            database_url=rendered,
            database_name=str(sa.make_url(rendered).database),
            redis_url=redis_url,
            key_prefix=prefix,
            workdir=workdir,
            workers=workers,
            threads=threads,
        )
        stack.env = production_env(stack)
        (workdir / "metrics").mkdir(exist_ok=True)
        try:
            yield stack
        finally:
            client = stack.redis()
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(key)
            client.close()


def production_env(stack: Stack) -> dict[str, str]:
    """The environment of every service process: the production profile, JSON logs at INFO,
    limits nobody reaches, and dummies for what production demands but a benchmark never uses
    (no email is sent, no link is followed)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("APP_", "DATABASE_", "REDIS_", "RATELIMIT_", "WEB_", "GUNICORN_"))
    }
    env.update(
        {
            "APP_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "DATABASE_URL": stack.database_url,
            "REDIS_URL": stack.redis_url,
            "REDIS_KEY_PREFIX": stack.key_prefix,
            "SMTP_HOST": "smtp.invalid",
            "PUBLIC_BASE_URL": "https://bench.invalid",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "ACCESS_TOKEN_TTL_SECONDS": "3600",
            "WEB_CONCURRENCY": str(stack.workers),
            "WEB_THREADS": str(stack.threads),
            "PROMETHEUS_MULTIPROC_DIR": str(stack.workdir / "metrics"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update(dict.fromkeys(RATE_LIMIT_SETTINGS, HIGH_LIMIT))
    return env


def hash_password(stack: Stack) -> tuple[str, float]:
    """The production argon2id hash of ``PASSWORD`` and the seconds one hash took."""
    from app.config import load_settings
    from app.core.security import PasswordHashing

    overrides = {k: v for k, v in stack.env.items() if k.isupper() and k != "APP_ENV"}
    settings = load_settings(APP_ENV="production", **overrides)
    hashing = PasswordHashing(settings)
    started = time.perf_counter()
    hashed = hashing.hash(PASSWORD)
    return hashed, time.perf_counter() - started


def argon2_parameters(stack: Stack) -> str:
    """The password-hash cost as configured for production."""
    from app.config import load_settings

    overrides = {k: v for k, v in stack.env.items() if k.isupper() and k != "APP_ENV"}
    settings = load_settings(APP_ENV="production", **overrides)
    return (
        f"argon2id t={settings.PASSWORD_HASH_TIME_COST}, "
        f"m={settings.PASSWORD_HASH_MEMORY_KIB // 1024} MiB, p={settings.PASSWORD_HASH_PARALLELISM}"
    )


TASK_ROWS = """
INSERT INTO tasks (owner_id, title, description, status, priority, due_at, tags,
                   created_at, updated_at, completed_at, version)
SELECT {owner}, 'Task ' || g, CASE WHEN g % 4 = 0 THEN 'Details of task ' || g END,
       (ARRAY['todo', 'in_progress', 'done'])[g % 3 + 1], g % 3,
       CASE WHEN g % 2 = 0 THEN now() + g * interval '1 minute' END,
       CASE WHEN g % 5 = 0 THEN '["work", "q1"]'::jsonb ELSE '[]'::jsonb END,
       now() - g * interval '1 second', now() - g * interval '1 second',
       CASE WHEN g % 3 = 2 THEN now() END, 1
FROM generate_series({first}, {last}) AS g
"""


def seed(stack: Stack) -> None:
    """Two users (the reader owns ``USER_TASKS`` tasks; the writer creates in its own name)."""
    hashed, _ = hash_password(stack)
    with stack.engine().begin() as connection:
        ids = []
        for email in (READER_EMAIL, WRITER_EMAIL):
            ids.append(
                connection.execute(
                    sa.text(
                        "INSERT INTO users (email, password_hash, role, is_active, created_at, "
                        "updated_at, password_changed_at) VALUES (:email, :hash, 'user', true, "
                        "now(), now(), now()) RETURNING id"
                    ),
                    {"email": email, "hash": hashed},
                ).scalar_one()
            )
        stack.reader_id, stack.writer_id = ids
        connection.execute(
            sa.text(TASK_ROWS.format(owner=stack.reader_id, first=1, last=USER_TASKS))
        )
        stack.first_task_id, stack.last_task_id = connection.execute(
            sa.text("SELECT min(id), max(id) FROM tasks WHERE owner_id = :owner"),
            {"owner": stack.reader_id},
        ).one()
    analyze(stack)


def grow(stack: Stack, total_tasks: int, owners: int = 99) -> float:
    """Add other users' tasks until the table holds ``total_tasks``; return the seconds taken.

    One ``INSERT ... SELECT generate_series`` per owner batch keeps the load fast; the reader's
    own tasks are untouched, so only the table around them grows.
    """
    started = time.perf_counter()
    with stack.engine().begin() as connection:
        existing = connection.execute(sa.text("SELECT count(*) FROM tasks")).scalar_one()
        missing = total_tasks - existing
        if missing <= 0:
            return 0.0
        owner_ids = [
            insert_user(connection, f"owner{number}@bench.invalid") for number in range(owners)
        ]
        per_owner, extra = divmod(missing, owners)
        for index, owner in enumerate(owner_ids):
            count = per_owner + (1 if index < extra else 0)
            if count:
                connection.execute(sa.text(TASK_ROWS.format(owner=owner, first=1, last=count)))
    analyze(stack)
    return time.perf_counter() - started


def analyze(stack: Stack) -> None:
    """Fresh planner statistics and a vacuumed visibility map (index-only scans)."""
    engine = sa.create_engine(
        stack.database_url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as connection:
        # INDEX_CLEANUP ON: every page ends all-visible, so counts are index-only scans
        connection.execute(sa.text("VACUUM (ANALYZE, INDEX_CLEANUP ON)"))
    engine.dispose()


def task_count(stack: Stack) -> int:
    """Rows in the tasks table."""
    with stack.engine().connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM tasks")).scalar_one())


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Service(Process):
    """A process this run started (gunicorn master or Celery worker): the test suite's
    ``Process`` (SIGTERM, then SIGKILL of its group) with its port and its children."""

    port: int | None = None

    @property
    def pid(self) -> int:
        """The main process id."""
        return self.popen.pid

    def children(self) -> list[int]:
        """Direct child pids (gunicorn workers, Celery pool processes)."""
        return children_of(self.pid)


def start_gunicorn(stack: Stack, app_uri: str, name: str, **extra_env: str) -> Service:
    """gunicorn with deploy/gunicorn.conf.py serving ``app_uri`` on a free loopback port."""
    port = free_port()
    log_path = stack.workdir / f"{name}.log"
    (stack.workdir / "metrics").mkdir(exist_ok=True)
    env = {**stack.env, "BIND": f"127.0.0.1:{port}", **extra_env}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", str(GUNICORN_CONF), app_uri],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service(name, process, log_path, port)
    wait_for_http(service, "/health/live" if app_uri == "wsgi:app" else "/")
    deadline = time.monotonic() + 30
    while len(service.children()) < stack.workers and time.monotonic() < deadline:
        time.sleep(0.05)
    return service


def wait_for_http(service: Service, path: str, timeout: float = 60.0) -> None:
    """Wait until ``service`` answers HTTP on ``path`` (any status); fail if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.popen.poll() is not None:
            tail = service.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{service.name} exited:\n{tail}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{service.port}{path}", timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{service.name} did not answer within {timeout:.0f}s")


def start_celery(
    stack: Stack, app_module: str, name: str, queues: str, concurrency: int = 2, **extra_env: str
) -> Service:
    """A Celery worker (prefork, ``concurrency`` processes) consuming ``queues``."""
    log_path = stack.workdir / f"{name}.log"
    env = {**stack.env, **extra_env}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "celery"),
                "-A",
                app_module,
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "--queues",
                queues,
                "--loglevel",
                "INFO",
                "--hostname",
                f"{name}@bench",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service(name, process, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{log_path.read_text(errors='replace')[-2000:]}")
        if len(service.children()) >= concurrency and b"ready" in log_path.read_bytes():
            return service
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not become ready within 60s")


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def private_kib(pid: int) -> tuple[int, int]:
    """(PSS, private) memory of ``pid`` in KiB: its share of pages shared with the processes it
    was forked from, and the pages only it holds (what one more such process costs)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0])
    return fields.get("Pss", 0), fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)


def api_call(
    port: int, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """One JSON request to the service; returns (status, decoded body)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = http_request(port, method, path, body=body, headers=headers, source="127.0.0.1")
    return answer.status, json.loads(answer.body or b"null")


def login(port: int, email: str) -> str:
    """A fresh access token for ``email``."""
    status, body = api_call(
        port, "POST", "/api/v1/auth/login", {"email": email, "password": PASSWORD}
    )
    if status != 200:
        raise RuntimeError(f"login of {email} failed: {status} {body}")
    return str(body["access_token"])
