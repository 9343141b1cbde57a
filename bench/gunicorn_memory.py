"""Memory of gunicorn workers with deploy/gunicorn.conf.py, with and without ``preload_app``.

    .venv/bin/python bench/gunicorn_memory.py

Starts gunicorn (3 workers, the embedded SQLite testing profile) twice on loopback, sends a few
hundred requests, then reads each worker's RSS and PSS (its share of pages shared with the
others) from /proc. PSS is what a replica really costs: preloading shares the imported code.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "gunicorn.conf.py"
WORKERS = 3


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kib(pid: int, field: str) -> int:
    """A field of /proc/<pid>/smaps_rollup, in KiB."""
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, flags=re.MULTILINE)
    return int(match.group(1)) if match else 0


def children(pid: int) -> list[int]:
    """The worker pids of a master."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()]


def measure(preload: bool, workdir: Path) -> tuple[int, int, int]:
    """(master RSS, mean worker RSS, mean worker PSS) in KiB."""
    conf = workdir / f"gunicorn-{preload}.conf.py"
    text = CONF.read_text().replace("preload_app = True", f"preload_app = {preload}")
    text = text.replace("Path(__file__).resolve().parent.parent", repr(str(ROOT)))
    conf.write_text(text)
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        "INSTANCE_PATH": str(workdir),
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(WORKERS),
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(dir=workdir),
    }
    master = subprocess.Popen(  # noqa: S603 (our own interpreter and config)
        [sys.executable, "-m", "gunicorn", "-c", str(conf)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        for _ in range(300):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=5)
        workers = children(master.pid)
        rss = [kib(pid, "Rss") for pid in workers]
        pss = [kib(pid, "Pss") for pid in workers]
        return kib(master.pid, "Rss"), sum(rss) // len(rss), sum(pss) // len(pss)
    finally:
        master.send_signal(signal.SIGTERM)
        master.wait(timeout=30)


def main() -> None:
    """Measure both and print a table."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print(f"{WORKERS} gthread workers, after 300 requests (KiB)")
        print(f"{'preload_app':<12} {'master RSS':>11} {'worker RSS':>11} {'worker PSS':>11}")
        for preload in (True, False):
            master, rss, pss = measure(preload, workdir)
            print(f"{preload!s:<12} {master:>11} {rss:>11} {pss:>11}")


if __name__ == "__main__":
    main()
