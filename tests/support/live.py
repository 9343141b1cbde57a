"""A live stack for end-to-end tests: committed data in its own database, the API served over
real HTTP, and real Celery worker / beat processes on a real Redis.

Unlike the unit tests (one rolled-back transaction each), worker processes must see committed
rows, so a live stack owns a whole database and empties it between tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import sqlalchemy
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from app import create_app
from app.extensions import db
from app.models import Base
from tests.support.database import migrated_database
from tests.support.services import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# ``celery`` run by this interpreter on the project's Celery app (celery_worker.py).
CELERY = (sys.executable, "-m", "celery", "-A", "celery_worker")


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns a truthy value (returned) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Process:
    """A subprocess of the stack (worker or beat) with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (warm shutdown), then SIGKILL if it lingers."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL the whole process group (main process and prefork children)."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


@dataclass
class LiveStack:
    """Settings shared by the in-test app, the HTTP server and the subprocesses."""

    database_url: str
    redis_url: str
    tmp_path: Path
    overrides: dict[str, str] = field(default_factory=dict)
    key_prefix: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}:")
    processes: list[Process] = field(default_factory=list)
    app: Flask | None = None
    server: BaseWSGIServer | None = None
    base_url: str = ""

    def environment(self) -> dict[str, str]:
        """Environment variables for a subprocess of this stack."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("APP_", "DATABASE_", "REDIS_", "CELERY_", "SMTP_", "MAIL_"))
        }
        env.update(
            {
                "APP_ENV": "testing",
                "DATABASE_URL": self.database_url,
                "CELERY_BROKER_URL": self.redis_url,
                "REDIS_URL": self.redis_url,
                "REDIS_KEY_PREFIX": self.key_prefix,
                "INSTANCE_PATH": str(self.tmp_path / "instance"),
                "OUTBOX_KICK_ENABLED": "true",
                "LOG_LEVEL": "INFO",
                "LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.overrides)
        return env

    def settings_overrides(self) -> dict[str, Any]:
        """The same settings for the in-test app."""
        env = self.environment()
        return {
            key: value for key, value in env.items() if key.isupper() and key in _setting_names()
        }

    def start_app(self) -> Flask:
        """Create the in-test app and serve it over HTTP on a free port (in a thread)."""
        self.app = create_app(self.settings_overrides())
        port = free_port()
        self.server = make_server("127.0.0.1", port, self.app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{port}"
        return self.app

    def start_worker(
        self,
        *,
        queues: str = "events,notifications,jobs",
        concurrency: int = 2,
        name: str = "worker",
    ) -> Process:
        """Start ``celery worker`` and wait until it is ready."""
        command_line = [
            *CELERY,
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-n",
            f"{name}-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
        ]
        process = self._spawn(name, command_line)
        wait_for(
            lambda: "ready" in process.log() or process.popen.poll() is not None,
            60,
            f"{name} to be ready",
        )
        if process.popen.poll() is not None:
            raise AssertionError(f"{name} exited:\n{process.log()[-3000:]}")
        return process

    def start_beat(self) -> Process:
        """Start ``celery beat`` with a schedule file in the stack's folder."""
        schedule = self.tmp_path / f"beat-{uuid.uuid4().hex[:6]}"
        command_line = [
            *CELERY,
            "beat",
            "-s",
            str(schedule),
            "-l",
            "INFO",
        ]
        return self._spawn("beat", command_line)

    def _spawn(self, name: str, command_line: list[str]) -> Process:
        log_path = self.tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.log"
        log_file = log_path.open("wb")
        popen = subprocess.Popen(
            command_line,
            cwd=PROJECT_ROOT,
            env=self.environment(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process = Process(name, popen, log_path)
        self.processes.append(process)
        return process

    def reset(self) -> None:
        """Empty every table and the stack's Redis keys (between tests)."""
        assert self.app is not None
        with self.app.app_context(), db.engine.begin() as connection:
            names = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
            connection.execute(sqlalchemy.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        client = redis.Redis.from_url(self.redis_url)
        for key in client.scan_iter(f"{self.key_prefix}*"):
            client.delete(key)

    def close(self) -> None:
        """Stop every process and the HTTP server."""
        for process in self.processes:
            process.stop()
        if self.server is not None:
            self.server.shutdown()


def _setting_names() -> set[str]:
    from app.config import Settings

    return set(Settings.model_fields)


@contextmanager
def live_database(postgres_server_url: str) -> Iterator[str]:
    """A new database migrated to head, for a live stack."""
    with migrated_database(postgres_server_url, prefix="tmpl_live") as url:
        yield url
