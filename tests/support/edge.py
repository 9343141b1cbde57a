"""The production edge on loopback: a real gunicorn (deploy/gunicorn.conf.py) behind a real nginx
configured from deploy/nginx/nginx.conf, the compose load balancer's own file.

Both are processes of a ``LiveStack`` (its database, Redis prefix and settings), stopped by pid.
Clients connect from 127.0.0.2 so that the client's address and nginx's (127.0.0.1) differ.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.live import PROJECT_ROOT, LiveStack, Process, wait_for
from tests.support.services import answers, ensure_nginx, free_port

CLIENT_ADDRESS = "127.0.0.2"
NGINX_CONF = PROJECT_ROOT / "deploy" / "nginx" / "nginx.conf"
GUNICORN_CONF = PROJECT_ROOT / "deploy" / "gunicorn.conf.py"


@dataclass
class Response:
    """What a client received."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    source: str = CLIENT_ADDRESS,
    timeout: float = 30,
) -> Response:
    """One request on a new connection from ``source`` to 127.0.0.1:``port``."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0)
    )
    all_headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=data, headers=all_headers)
        answer = connection.getresponse()
        return Response(
            answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        )
    finally:
        connection.close()


@dataclass
class Gunicorn:
    """A gunicorn master and its workers serving the stack's app."""

    process: Process
    port: int
    metrics_dir: Path

    def log_records(self) -> list[dict[str, Any]]:
        """Every JSON line the master and workers wrote."""
        records = []
        for line in self.process.log().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def request_records(self) -> list[dict[str, Any]]:
        """The app's one-line-per-request records."""
        return [record for record in self.log_records() if record.get("logger") == "app.request"]

    def worker_pids(self) -> set[int]:
        """Workers that booted (from gunicorn's own lines)."""
        pids = set()
        for record in self.log_records():
            match = re.match(r"Booting worker with pid: (\d+)", str(record.get("message", "")))
            if match:
                pids.add(int(match.group(1)))
        return pids

    def terminate(self) -> None:
        """SIGTERM to the master only (gunicorn's graceful stop)."""
        self.process.popen.send_signal(signal.SIGTERM)


def start_gunicorn(stack: LiveStack, *, workers: int = 3, **environment: str) -> Gunicorn:
    """``gunicorn -c deploy/gunicorn.conf.py`` with ``workers`` processes, once all have booted."""
    port = free_port()
    metrics_dir = stack.tmp_path / f"metrics-{uuid.uuid4().hex[:6]}"
    metrics_dir.mkdir()
    env = {
        **stack.environment(),
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "WEB_THREADS": "4",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        # nginx is the one proxy in front, as in docker-compose.yml.
        "PROXY_FIX_X_FOR": "1",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        **environment,
    }
    log_path = stack.tmp_path / f"gunicorn-{uuid.uuid4().hex[:6]}.log"
    popen = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    process = Process("gunicorn", popen, log_path)
    stack.processes.append(process)
    server = Gunicorn(process, port, metrics_dir)
    wait_for(
        lambda: len(server.worker_pids()) >= workers or popen.poll() is not None,
        60,
        "gunicorn workers to boot",
    )
    assert popen.poll() is None, f"gunicorn exited:\n{process.log()[-3000:]}"
    wait_for(lambda: answers("127.0.0.1", port), 30, "gunicorn to listen")
    return server


@dataclass
class Nginx:
    """nginx in front of one gunicorn, listening on 127.0.0.1:``port``."""

    process: Process
    port: int


def render_load_balancer(conf: str, *, upstream_port: int, port: int, prefix: Path) -> str:
    """The compose load balancer's nginx.conf, pointed at one local gunicorn, run in ``prefix``."""
    replacements = [
        # The replicas api-1 and api-2 become the one local gunicorn.
        (
            r"(?m)^\s*server api-1:8000[^;]*;\n\s*server api-2:8000([^;]*);",
            rf"server 127.0.0.1:{upstream_port}\1;",
        ),
        (r"listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;"),
        (
            r"(?m)^http \{",
            "http {\n"
            + "".join(
                f"    {kind}_temp_path {prefix / kind};\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            ),
        ),
    ]
    for pattern, replacement in replacements:
        conf, count = re.subn(pattern, replacement, conf, count=1)
        assert count == 1, f"deploy/nginx/nginx.conf no longer matches {pattern!r}"
    head = f"daemon off;\npid {prefix / 'nginx.pid'};\n"
    if os.geteuid() == 0:
        head += "user root;\n"  # its workers write temporary files under the test's folder
    return head + conf


def start_nginx(stack: LiveStack, upstream_port: int) -> Nginx:
    """nginx (Debian's package, installed when missing) as a foreground process."""
    return start_nginx_rendered(
        stack,
        lambda port, prefix: render_load_balancer(
            NGINX_CONF.read_text(), upstream_port=upstream_port, port=port, prefix=prefix
        ),
    )


def start_nginx_rendered(stack: LiveStack, render: Callable[[int, Path], str]) -> Nginx:
    """nginx as a foreground process of ``stack``, its nginx.conf ``render(port, prefix)``."""
    binary = ensure_nginx()
    port = free_port()
    prefix = stack.tmp_path / f"nginx-{uuid.uuid4().hex[:6]}"
    prefix.mkdir()
    conf_path = prefix / "nginx.conf"
    conf_path.write_text(render(port, prefix))
    log_path = prefix / "nginx.log"
    popen = subprocess.Popen(
        [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf_path)],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    process = Process("nginx", popen, log_path)
    stack.processes.append(process)
    wait_for(lambda: answers("127.0.0.1", port) or popen.poll() is not None, 30, "nginx to listen")
    assert popen.poll() is None, f"nginx exited:\n{process.log()[-3000:]}"
    return Nginx(process, port)
