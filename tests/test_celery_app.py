"""Celery worker hygiene: what a failed task leaves behind is freed at once.

Found by the soak (docs/reliability.md): a failed task's exception held its traceback, whose
frames held the exception again; only the rarely run full collection freed that, and worker
children grew by about 0.5 MiB per failure (90 MiB in a burst while PostgreSQL restarted).
"""

from __future__ import annotations

import gc
import uuid
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from celery.app.trace import build_tracer
from flask import Flask


class Payload:
    """Something large a task holds in a local variable."""


@pytest.fixture
def no_automatic_collection() -> Iterator[None]:
    """Only reference counting frees objects during the test."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def trace_failing_task(app: Flask, held: list[weakref.ref[Payload]]) -> Any:
    """Run, as a worker child does, a task that fails with a chained exception; its TraceInfo."""
    celery = app.extensions["celery"]

    def fails() -> None:
        payload = Payload()
        held.append(weakref.ref(payload))
        try:
            raise ConnectionError("server closed the connection")
        except ConnectionError as exc:
            raise RuntimeError("task failed") from exc

    task = celery.task(name=f"tests.fails_{uuid.uuid4().hex[:6]}")(fails)
    tracer = build_tracer(task.name, task, eager=False, propagate=False, app=celery)
    _, info, _, _ = tracer(uuid.uuid4().hex, (), {}, {"id": uuid.uuid4().hex})
    return info


@pytest.mark.usefixtures("no_automatic_collection")
def test_a_failed_tasks_locals_are_freed_without_the_garbage_collector(app: Flask) -> None:
    held: list[weakref.ref[Payload]] = []
    info = trace_failing_task(app, held)
    assert info.state == "FAILURE"
    assert isinstance(info.retval, RuntimeError)
    assert held[0]() is None, "the failed task's frame (and its locals) is still alive"


def test_the_failure_is_still_reported_with_its_traceback(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("ERROR", logger="celery.app.trace")
    info = trace_failing_task(app, [])
    assert info.retval.__traceback__ is None
    assert info.retval.__cause__.__traceback__ is None
    [record] = [r for r in caplog.records if r.name == "celery.app.trace"]
    assert "raised unexpected: RuntimeError('task failed')" in record.getMessage()
    assert record.exc_info is not None  # logged (and sent to the parent) before it was detached


def test_the_worker_freezes_what_it_built_before_forking(app: Flask) -> None:
    """Objects of the main process are kept out of the children's collections (gc.freeze), so
    a collection in a child does not copy every page it shares with the main process."""
    from celery.signals import worker_init

    gc.unfreeze()
    try:
        worker_init.send(sender=None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
