"""gunicorn's settings, the same for the Dockerfile, docker-compose and Kubernetes:

    gunicorn -c deploy/gunicorn.conf.py wsgi:app

The app reads the environment only through ``app/config.py``; this file is the exception on
purpose: it is gunicorn's own configuration, executed by the gunicorn master before any app
exists, so its process-level knobs come straight from the environment:

    WEB_CONCURRENCY     worker processes (default 2 x CPUs + 1, at most 8; CPUs as the
                        container's CPU quota allows)
    WEB_THREADS         threads per worker (default 4; keep DATABASE_POOL_SIZE >= this)
    BIND, PORT          listen address: BIND as given, else 0.0.0.0:$PORT (default 8000)
    GUNICORN_KEEPALIVE, GUNICORN_TIMEOUT, GUNICORN_GRACEFUL_TIMEOUT, GUNICORN_MAX_REQUESTS,
    GUNICORN_MAX_REQUESTS_JITTER   the defaults below, in seconds / requests
    FORWARDED_ALLOW_IPS proxies whose X-Forwarded-Proto gunicorn trusts (default 127.0.0.1)
    PROMETHEUS_MULTIPROC_DIR  where workers write their metrics (default: a new temporary
                        folder); emptied at start so a restart does not add old counts
    LOG_LEVEL, LOG_FORMAT     as for the app (gunicorn's own lines are JSON too)
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def cpu_count() -> int:
    """CPUs this process may use: the cgroup v2 quota (a container's limit), else the CPUs
    it may run on (``os.cpu_count()`` would report the whole host)."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Multiprocess metrics: every worker writes its own files there and /metrics adds them up. It
# must be in the environment before prometheus_client is first imported (by the app, below).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gunicorn-metrics-")
METRICS_DIR = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
METRICS_DIR.mkdir(parents=True, exist_ok=True)

wsgi_app = "wsgi:app"
chdir = str(PROJECT_ROOT)

# Threads per process: requests wait on PostgreSQL, Redis and argon2 far more than they run
# Python, so a few threads share each process's memory; processes give CPU parallelism.
worker_class = "gthread"
workers = _int("WEB_CONCURRENCY", min(2 * cpu_count() + 1, 8))
threads = _int("WEB_THREADS", 4)

bind = [os.environ.get("BIND") or f"0.0.0.0:{_int('PORT', 8000)}"]

# Longer than the load balancer's idle timeout (nginx upstream keepalive 30-60 s, cloud load
# balancers 60 s): the balancer must be the side that closes an idle connection. If gunicorn
# closed first, a request the balancer sends at that moment would fail with a 502.
keepalive = _int("GUNICORN_KEEPALIVE", 75)
# gthread: a worker whose main loop stops reporting for this long is killed and replaced. It is
# not a per-request limit (threads keep running); nginx's proxy_read_timeout is.
timeout = _int("GUNICORN_TIMEOUT", 30)
# On SIGTERM a worker stops accepting and finishes its in-flight requests for up to this long.
# Keep it below the orchestrator's grace period minus any preStop pause (compose: 40 s
# stop_grace_period; Kubernetes: terminationGracePeriodSeconds).
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 25)
# Recycle each worker after this many requests (bounds slow leaks); the jitter spreads the
# restarts so the workers never all restart at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 200)

# Proxies whose X-Forwarded-Proto (and similar) gunicorn believes. The client address is the
# app's business: ProxyFix with PROXY_FIX_X_FOR hops, so a client cannot pick its own.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Import the app once in the master and fork the workers from it: copy-on-write pages shared
# by every worker (less memory per worker), and a configuration error stops the master with its
# one line before any worker starts. The price: everything the master created is inherited,
# so each worker drops the database pool in post_fork, and a code change needs a restart
# (SIGHUP re-reads this file but not the preloaded app).
preload_app = True

# The runtime control socket (gunicornc) is of no use in a container, and its default path in
# $HOME is read-only there (and shared by two gunicorns on one machine).
control_socket_disable = True

# One line per request comes from the app itself (logger "app.request": method, route,
# status, duration, request id, user, client address); gunicorn's access log would be a
# second, poorer line for the same request.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
if os.environ.get("LOG_FORMAT", "json") == "json":
    # gunicorn's own lines (boot, worker exits) in the app's JSON shape. The root logger is
    # left to the app's logging set-up, which adds its handler when the app is created.
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "WARNING", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": loglevel.upper(), "handlers": ["json"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        },
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "formatters": {"json": {"()": "app.core.logging.JsonFormatter"}},
    }


def remove_metric_files() -> None:
    """Delete prometheus_client's ``*.db`` files (and nothing else) in the metrics folder."""
    for path in METRICS_DIR.glob("*.db"):
        path.unlink(missing_ok=True)


def on_starting(server: Any) -> None:
    """Once per master start (not on reload): forget the metrics of a previous run."""
    remove_metric_files()


def post_fork(server: Any, worker: Any) -> None:
    """In each new worker: drop the database connections inherited from the master's pool."""
    flask_app = server.app.wsgi() if server.cfg.preload_app else None
    if flask_app is not None and hasattr(flask_app, "app_context"):
        from app.extensions import db

        with flask_app.app_context():
            db.dispose_after_fork()


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: its live gauges no longer count (its counters still do)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """The master stops: leave no metric files behind."""
    remove_metric_files()
