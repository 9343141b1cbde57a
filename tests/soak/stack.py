"""The stack a soak runs against: a throwaway PostgreSQL and Redis (the faults stop them, so never
the machine's shared ones), two gunicorn instances (deploy/gunicorn.conf.py) behind nginx
(deploy/nginx/nginx.conf with its two replicas on loopback), a Celery worker, beat, and a
webhook receiver. Every process is stopped by its own pid."""

from __future__ import annotations

import contextlib
import re
import shlex
import subprocess
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy

from app.config import Settings, normalize_database_url
from tests.support.edge import (
    NGINX_CONF,
    Gunicorn,
    Nginx,
    render_load_balancer,
    start_gunicorn,
    start_nginx_rendered,
)
from tests.support.live import LiveStack, Process, live_database, wait_for
from tests.support.services import (
    ManagedServer,
    answers,
    start_postgres,
    start_redis,
)
from tests.webhooks.receiver import Receiver

# Production's limits (the testing profile raises them out of reach), so the soak shows what a
# real deployment answers under this load; the traffic is shaped to fit them.
PRODUCTION_LIMITS = (
    "RATELIMIT_DEFAULT",
    "RATELIMIT_LOGIN_PER_IP",
    "RATELIMIT_LOGIN_PER_ACCOUNT",
    "RATELIMIT_REGISTER_PER_IP",
    "RATELIMIT_REFRESH_PER_IP",
    "RATELIMIT_JOB_CREATE_PER_USER",
    "PASSWORD_HASH_TIME_COST",
    "PASSWORD_HASH_MEMORY_KIB",
    "PASSWORD_HASH_PARALLELISM",
)


def soak_settings() -> dict[str, str]:
    """Settings of every process: production's limits and password hashing, loopback webhooks."""
    settings = {name: str(Settings.model_fields[name].default) for name in PRODUCTION_LIMITS}
    settings.update(
        {
            # The receiver listens on loopback; production refuses this (and only this) setting.
            "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "LOG_LEVEL": "INFO",
        }
    )
    return settings


def pid_children(pid: int) -> list[int]:
    """Direct children of ``pid`` (empty once it has exited)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


@dataclass
class SoakStack:
    """Everything a soak starts; ``close`` stops it all."""

    workdir: Path
    postgres: ManagedServer
    redis: ManagedServer
    live: LiveStack
    receiver: Receiver
    gunicorns: list[Gunicorn] = field(default_factory=list)
    nginx: Nginx | None = None
    worker: Process | None = None
    beat: Process | None = None
    exits: ExitStack = field(default_factory=ExitStack)

    @property
    def port(self) -> int:
        """nginx's port: where the clients connect."""
        assert self.nginx is not None
        return self.nginx.port

    @property
    def redis_port(self) -> int:
        """The throwaway Redis's port (kept across its restart)."""
        return int(self.redis.url.rsplit(":", 1)[1].split("/")[0])

    def engine(self) -> sqlalchemy.Engine:
        """A connection-per-use engine on the soak's database (survives PostgreSQL restarts)."""
        return sqlalchemy.create_engine(
            normalize_database_url(self.live.database_url), poolclass=sqlalchemy.NullPool
        )

    def processes(self) -> dict[str, list[int]]:
        """Role -> pids of every process whose memory the soak follows, right now."""
        roles: dict[str, list[int]] = {}
        assert self.nginx is not None
        nginx_pid = self.nginx.process.popen.pid
        roles["nginx master"] = [nginx_pid]
        roles["nginx worker"] = pid_children(nginx_pid)
        for letter, server in zip("ab", self.gunicorns, strict=False):
            master = server.process.popen.pid
            roles[f"gunicorn-{letter} master"] = [master]
            roles[f"gunicorn-{letter} worker"] = pid_children(master)
        if self.worker is not None and self.worker.popen.poll() is None:
            roles["celery worker main"] = [self.worker.popen.pid]
            roles["celery worker child"] = pid_children(self.worker.popen.pid)
        if self.beat is not None and self.beat.popen.poll() is None:
            roles["celery beat"] = [self.beat.popen.pid]
        return roles

    def start_worker(self) -> Process:
        """A Celery worker on every queue (two prefork children), once it is ready."""
        self.worker = self.live.start_worker(concurrency=2, name="worker")
        return self.worker

    def start_beat(self) -> Process:
        """Celery beat (the sweeps are what recover lost work)."""
        self.beat = self.live.start_beat()
        return self.beat

    def stop_postgres(self) -> None:
        """``pg_ctl stop -m fast``: every connection is closed at once."""
        assert self.postgres.stop_command is not None
        subprocess.run(self.postgres.stop_command, check=True, capture_output=True)

    def start_postgres_again(self) -> None:
        """Start the stopped PostgreSQL with the options it first ran with."""
        assert self.postgres.stop_command is not None
        run_as, pg_ctl = self.postgres.stop_command[:-7], self.postgres.stop_command[-7]
        data = self.postgres.data_dir / "data"
        subprocess.run(
            [
                *run_as,
                pg_ctl,
                "-D",
                str(data),
                "-o",
                postmaster_options(data),
                "-l",
                str(self.postgres.data_dir / "log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
        )

    def stop_redis(self) -> None:
        """SIGTERM Redis (it persists nothing: it comes back empty, every message lost)."""
        if self.redis.process is not None:
            self.redis.process.terminate()
            self.redis.process.wait(timeout=15)
        wait_for(lambda: not answers("127.0.0.1", self.redis_port), 15, "Redis to stop")

    def start_redis_again(self) -> None:
        """A new, empty Redis on the same port."""
        old = self.redis
        self.redis = start_redis(self.redis_port)
        old.stop()  # only its data folder is left to remove

    def close(self) -> None:
        """Stop every process, then the servers; remove nothing the report needs."""
        self.receiver.stop()
        self.live.close()
        for process in (self.worker, self.beat):
            if process is not None:
                process.kill()
        with contextlib.suppress(Exception):  # dropping the database needs PostgreSQL up
            self.exits.close()
        self.redis.stop()
        self.postgres.stop()


def postmaster_options(data_dir: Path) -> str:
    """The server options of the last start, from ``postmaster.opts`` (minus the data folder)."""
    words = shlex.split((data_dir / "postmaster.opts").read_text())[1:]
    options: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == "-D":
            skip = True
        else:
            options.append(word)
    return shlex.join(options)


def render_two_replicas(
    conf: str, *, upstream_ports: tuple[int, int], port: int, prefix: Path
) -> str:
    """The compose load balancer's configuration, its replicas api-1 and api-2 on loopback."""
    first, second = upstream_ports
    rendered = render_load_balancer(conf, upstream_port=first, port=port, prefix=prefix)
    rendered, count = re.subn(
        rf"(?m)^(\s*)server 127\.0\.0\.1:{first}([^;]*);",
        rf"\1server 127.0.0.1:{first}\2;\n\1server 127.0.0.1:{second}\2;",
        rendered,
        count=1,
    )
    assert count == 1, "the rendered nginx.conf lost its upstream server line"
    return rendered


def start_load_balancer(live: LiveStack, upstream_ports: tuple[int, int]) -> Nginx:
    """nginx in front of both gunicorn instances, as a foreground process of ``live``."""
    return start_nginx_rendered(
        live,
        lambda port, prefix: render_two_replicas(
            NGINX_CONF.read_text(), upstream_ports=upstream_ports, port=port, prefix=prefix
        ),
    )


def start_stack(workdir: Path | None = None) -> SoakStack:
    """Start everything (about 10-20 s); on any failure, stop what was started."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="soak-"))
    postgres = start_postgres()
    try:
        redis_server = start_redis()
    except BaseException:
        postgres.stop()
        raise
    exits = ExitStack()
    stack: SoakStack | None = None
    try:
        database_url = exits.enter_context(live_database(postgres.url))
        live = LiveStack(database_url, redis_server.url, workdir, overrides=soak_settings())
        stack = SoakStack(workdir, postgres, redis_server, live, Receiver().start(), exits=exits)
        # Workers live as long as the run, so a leak shows instead of being recycled away.
        stack.gunicorns = [
            start_gunicorn(live, workers=2, GUNICORN_MAX_REQUESTS="0") for _ in range(2)
        ]
        ports = (stack.gunicorns[0].port, stack.gunicorns[1].port)
        stack.nginx = start_load_balancer(live, ports)
        stack.start_worker()
        stack.start_beat()
        return stack
    except BaseException:
        if stack is not None:
            stack.close()
        else:
            exits.close()
            redis_server.stop()
            postgres.stop()
        raise
