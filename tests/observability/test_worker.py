"""Celery task metrics and the request id on Celery's own log lines (tasks run in-process)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from celery import Celery
from flask import Flask

from app.core.requests import current_request_id
from app.observability.metrics import CELERY_TASK_DURATION, CELERY_TASKS
from app.observability.worker import CELERY_TRACE_LOGGER, task_request_id


def counted(task: str, outcome: str) -> float:
    """The current value of celery_tasks_total{task, outcome}."""
    return CELERY_TASKS.labels(task, outcome)._value.get()


def runs(task: str) -> float:
    """How many durations celery_task_duration_seconds{task} has observed."""
    return sum(
        sample.value
        for metric in CELERY_TASK_DURATION.collect()
        for sample in metric.samples
        if sample.name.endswith("_count") and sample.labels.get("task") == task
    )


@pytest.fixture(scope="module")
def tasks(app: Flask) -> dict[str, Any]:
    """Three throwaway tasks on the app's Celery: one succeeds, one fails, one retries once."""
    celery: Celery = app.extensions["celery"]

    @celery.task(name="tests.observability.succeeds")
    def succeeds() -> str | None:
        return current_request_id()  # what the task's own log lines carry

    @celery.task(name="tests.observability.fails")
    def fails() -> None:
        raise ValueError("no")

    @celery.task(name="tests.observability.retries", bind=True, max_retries=1)
    def retries(self: Any) -> str:
        if self.request.retries == 0:
            raise self.retry(countdown=0)
        return "second time"

    return {"succeeds": succeeds, "fails": fails, "retries": retries}


def test_outcomes_and_durations_are_counted(tasks: dict[str, Any]) -> None:
    before = {
        "succeeded": counted("tests.observability.succeeds", "succeeded"),
        "failed": counted("tests.observability.fails", "failed"),
        "retried": counted("tests.observability.retries", "retried"),
        "runs": runs("tests.observability.succeeds"),
    }
    tasks["succeeds"].apply()
    tasks["succeeds"].apply()
    tasks["fails"].apply()
    tasks["retries"].apply()

    assert counted("tests.observability.succeeds", "succeeded") - before["succeeded"] == 2
    assert counted("tests.observability.fails", "failed") - before["failed"] == 1
    assert counted("tests.observability.retries", "retried") - before["retried"] == 1
    assert runs("tests.observability.succeeds") - before["runs"] == 2


def test_celerys_own_lines_carry_the_request_id(
    tasks: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    result = tasks["succeeds"].apply(headers={"request_id": "req-from-the-api-1"})
    assert result.get() == "req-from-the-api-1"
    celery_lines = [r for r in caplog.records if r.name == CELERY_TRACE_LOGGER]
    assert celery_lines, "Celery logged no task line"
    assert all(getattr(r, "request_id", None) == "req-from-the-api-1" for r in celery_lines)
    assert "succeeded" in celery_lines[-1].getMessage()


def test_no_task_no_request_id() -> None:
    assert task_request_id() is None
