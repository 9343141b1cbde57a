"""Beat's schedule and the worker's limits follow the settings, and every periodic entry names a
task the worker knows (a misspelt one would never run, and nothing would say so)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from app.celery_app import QUEUES, beat_schedule, celery_config
from app.config import load_settings


def test_every_beat_entry_is_a_registered_task_routed_to_a_consumed_queue(app: Flask) -> None:
    celery = app.extensions["celery"]
    celery.loader.import_default_modules()
    routes = celery.conf.task_routes
    for name, entry in celery.conf.beat_schedule.items():
        task = entry["task"]
        assert task in celery.tasks, f"{name}: {task} is not a task"
        route = routes.get(f"{task.split('.')[0]}.*")
        queue = route["queue"] if route else celery.conf.task_default_queue
        assert queue in QUEUES, f"{name}: {task} goes to {queue}, which no worker consumes"


def test_the_intervals_and_limits_are_the_settings(tmp_path: Path) -> None:
    settings = load_settings(
        APP_ENV="testing",
        INSTANCE_PATH=str(tmp_path),
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        OUTBOX_SWEEP_INTERVAL_SECONDS=7,
        TASK_REMINDER_INTERVAL_SECONDS=77,
        CLEANUP_INTERVAL_SECONDS=777,
        CELERY_VISIBILITY_TIMEOUT_SECONDS=1234,
        CELERY_TASK_SOFT_TIME_LIMIT_SECONDS=40,
        CELERY_TASK_TIME_LIMIT_SECONDS=50,
    )
    schedule = beat_schedule(settings)
    assert schedule["outbox-sweep"]["schedule"] == 7
    assert schedule["task-due-reminders"]["schedule"] == 77
    assert schedule["cleanup"]["schedule"] == 777
    # Each entry expires after its interval, so a beat that outran the worker piles nothing up.
    assert all(entry["options"]["expires"] == entry["schedule"] for entry in schedule.values())
    config = celery_config(settings)
    assert config["broker_transport_options"]["visibility_timeout"] == 1234
    assert (config["task_soft_time_limit"], config["task_time_limit"]) == (40, 50)
    assert config["worker_enable_remote_control"] is False  # a Redis restart must not kill it
