"""Real PostgreSQL and Redis for the tests.

Use the server named by ``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` (default: the standard local
ports) when it answers; otherwise start a throwaway instance from installed server binaries;
otherwise, when running as root with apt, install them; otherwise stop with one clear line.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class ServiceUnavailableError(RuntimeError):
    """No server answers and none could be started; the message says what to install."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate: object, timeout: float, what: str) -> None:
    """Poll ``predicate`` until true or raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise ServiceUnavailableError(f"{what} did not come up within {timeout:.0f}s")


def _apt_install(*packages: str) -> bool:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
    result = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=False,
        env=env,
        capture_output=True,
    )
    return result.returncode == 0


@dataclass
class ManagedServer:
    """A server process this test run started; stopped at exit, by its own pid only."""

    name: str
    url: str
    process: subprocess.Popen[bytes] | None
    data_dir: Path
    stop_command: list[str] | None = None

    def stop(self) -> None:
        """Stop the server and remove its data directory."""
        if self.stop_command:
            subprocess.run(self.stop_command, check=False, capture_output=True)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _postgres_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def start_postgres(port: int | None = None) -> ManagedServer:
    """Start a throwaway PostgreSQL on a free port (as the ``postgres`` user when root)."""
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not (initdb and pg_ctl) and _apt_install("postgresql"):
        initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        raise ServiceUnavailableError(
            "PostgreSQL is not reachable and no server is installed: install PostgreSQL "
            "(e.g. `apt-get install postgresql`) or set TEST_DATABASE_URL"
        )
    port = port or free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="test-postgres-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb and postgres refuse to run as root.
        shutil.chown(data_dir, user="postgres", group="postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [
            *run_as,
            initdb,
            "-D",
            str(data_dir / "data"),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    options = (
        f"-p {port} -k {data_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        [
            *run_as,
            pg_ctl,
            "-D",
            str(data_dir / "data"),
            "-o",
            options,
            "-l",
            str(data_dir / "log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    return ManagedServer(
        name="postgresql",
        url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
        process=None,
        data_dir=data_dir,
        stop_command=[*run_as, pg_ctl, "-D", str(data_dir / "data"), "-m", "fast", "-w", "stop"],
    )


def start_redis(port: int | None = None) -> ManagedServer:
    """Start a throwaway Redis on a free port, persisting nothing."""
    binary = shutil.which("redis-server")
    if binary is None and _apt_install("redis-server"):
        binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailableError(
            "Redis is not reachable and no server is installed: install Redis "
            "(e.g. `apt-get install redis-server`) or set TEST_REDIS_URL"
        )
    port = port or free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="test-redis-"))
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: answers("127.0.0.1", port), 20, "redis-server")
    return ManagedServer("redis", f"redis://127.0.0.1:{port}/0", process, data_dir)


def _postgres_answers(url: str) -> bool:
    parts = urlsplit(url)
    if not answers(parts.hostname or "127.0.0.1", parts.port or 5432):
        return False
    import sqlalchemy

    from app.config import normalize_database_url

    try:
        engine = sqlalchemy.create_engine(
            normalize_database_url(url), poolclass=sqlalchemy.NullPool
        )
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        return True
    except Exception:
        return False


def ensure_postgres() -> str:
    """URL of a PostgreSQL server the tests may create databases on."""
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    if _postgres_answers(url):
        return url
    server = start_postgres()
    atexit.register(server.stop)
    return server.url


def ensure_redis() -> str:
    """URL of a Redis server the tests may use."""
    url = os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL)
    parts = urlsplit(url)
    if answers(parts.hostname or "127.0.0.1", parts.port or 6379):
        return url
    server = start_redis()
    atexit.register(server.stop)
    return server.url


def ensure_nginx() -> str:
    """Path of an nginx binary: the installed one, else Debian's package when root with apt."""
    binary = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(path).exists()),
        None,
    )
    if binary is None and _apt_install("nginx"):
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if binary is None or not Path(binary).exists():
        raise ServiceUnavailableError(
            "nginx is not installed: install it (e.g. `apt-get install nginx`) for the edge tests"
        )
    return binary
