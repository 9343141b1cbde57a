"""deploy/gunicorn.conf.py: its values, from the environment, and its hooks."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from app.extensions import db

CONF = Path(__file__).resolve().parents[2] / "deploy" / "gunicorn.conf.py"
KNOBS = (
    "WEB_CONCURRENCY",
    "WEB_THREADS",
    "BIND",
    "PORT",
    "FORWARDED_ALLOW_IPS",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "GUNICORN_KEEPALIVE",
    "GUNICORN_TIMEOUT",
    "GUNICORN_GRACEFUL_TIMEOUT",
    "GUNICORN_MAX_REQUESTS",
    "GUNICORN_MAX_REQUESTS_JITTER",
)


def load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> dict[str, Any]:
    """The config module's globals with ``env`` (and nothing else of ours) in the environment."""
    for name in KNOBS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = load(monkeypatch, tmp_path)
    assert conf["worker_class"] == "gthread"
    assert conf["workers"] == min(2 * conf["cpu_count"]() + 1, 8)
    assert conf["threads"] == 4
    assert conf["bind"] == ["0.0.0.0:8000"]
    # Longer than a load balancer's usual 60 s idle timeout, so the balancer closes first.
    assert conf["keepalive"] > 60
    # Finishes in-flight requests well within compose's 40 s stop_grace_period.
    assert 0 < conf["graceful_timeout"] < 40
    assert conf["max_requests"] > 0
    assert 0 < conf["max_requests_jitter"] < conf["max_requests"]
    assert conf["forwarded_allow_ips"] == "127.0.0.1"
    assert conf["preload_app"] is True
    assert conf["accesslog"] is None  # the app's own JSON line per request instead
    assert conf["logconfig_dict"]["formatters"]["json"]["()"] == "app.core.logging.JsonFormatter"
    assert (tmp_path / "metrics").is_dir()


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = load(
        monkeypatch,
        tmp_path,
        WEB_CONCURRENCY="5",
        WEB_THREADS="8",
        PORT="9000",
        FORWARDED_ALLOW_IPS="10.0.0.2",
        GUNICORN_GRACEFUL_TIMEOUT="12",
        LOG_FORMAT="text",
    )
    assert (conf["workers"], conf["threads"]) == (5, 8)
    assert conf["bind"] == ["0.0.0.0:9000"]
    assert conf["forwarded_allow_ips"] == "10.0.0.2"
    assert conf["graceful_timeout"] == 12
    assert "logconfig_dict" not in conf  # gunicorn's own text lines
    assert load(monkeypatch, tmp_path, BIND="127.0.0.1:1234", PORT="9000")["bind"] == [
        "127.0.0.1:1234"
    ]


def test_post_fork_drops_the_inherited_pool(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, app: Flask
) -> None:
    conf = load(monkeypatch, tmp_path)
    with app.app_context():
        inherited = db.engine.pool
    server = SimpleNamespace(
        cfg=SimpleNamespace(preload_app=True), app=SimpleNamespace(wsgi=lambda: app)
    )
    conf["post_fork"](server, SimpleNamespace(pid=1))
    with app.app_context():
        assert db.engine.pool is not inherited


def test_metric_files_of_a_previous_run_are_removed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = load(monkeypatch, tmp_path)
    stale = tmp_path / "metrics" / "counter_123.db"
    stale.write_bytes(b"\0" * 16)
    keep = tmp_path / "metrics" / "README"
    keep.write_text("not ours")
    conf["on_starting"](None)
    assert not stale.exists()
    assert keep.exists()


def test_a_dead_workers_live_gauges_are_dropped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = load(monkeypatch, tmp_path)
    live = tmp_path / "metrics" / "gauge_livesum_4242.db"
    live.write_bytes(b"\0" * 16)
    counter = tmp_path / "metrics" / "counter_4242.db"
    counter.write_bytes(b"\0" * 16)
    conf["child_exit"](None, SimpleNamespace(pid=4242))
    assert not live.exists()
    assert counter.exists()  # what it counted still counts
