"""A request id sent through the load balancer follows the work it caused into the Celery worker:
the outbox stores it, the relay publishes with it, and every line the worker writes for the
resulting tasks carries it, Celery's own "succeeded" lines included. The worker's metrics port
counts those tasks across its prefork children."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.edge.conftest import Edge
from tests.edge.test_gunicorn_nginx import sample_value
from tests.support.edge import http_request
from tests.support.live import wait_for
from tests.support.services import free_port
from tests.webhooks.receiver import Receiver, running

pytestmark = pytest.mark.slow

FAST_DELIVERY = {
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    "WEBHOOK_CONNECT_TIMEOUT_SECONDS": "2",
    "WEBHOOK_READ_TIMEOUT_SECONDS": "2",
}


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON lines of a process's output."""
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def test_request_id_reaches_the_workers_lines_and_its_metrics(
    make_edge: Callable[..., Edge],
) -> None:
    edge = make_edge(**FAST_DELIVERY)
    # The worker alone gets a metrics port (multiprocess: it runs two prefork children).
    metrics_port = free_port()
    metrics_dir = edge.stack.tmp_path / "worker-metrics"
    metrics_dir.mkdir()
    edge.stack.overrides.update(
        {
            "WORKER_METRICS_PORT": str(metrics_port),
            "WORKER_METRICS_HOST": "127.0.0.1",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
    )
    worker = edge.stack.start_worker(concurrency=2)

    with running(Receiver()) as receiver:
        token = edge.sign_up("traced@example.com")
        auth = {"Authorization": f"Bearer {token}"}
        hook = edge.call(
            "POST",
            "/api/v1/webhooks",
            body={"url": receiver.url, "event_types": ["task.created"]},
            headers=auth,
        )
        assert hook.status == 201, hook.body
        request_id = f"trace-{uuid.uuid4().hex}"
        created = edge.call(
            "POST",
            "/api/v1/tasks",
            body={"title": "follow me"},
            headers={**auth, "X-Request-ID": request_id},
        )
        assert created.status == 201
        assert created.headers["x-request-id"] == request_id
        wait_for(lambda: receiver.count() >= 1, 30, "the webhook to be delivered")

    def finished_tasks() -> set[str]:
        return {
            record.get("data", {}).get("name")
            for record in json_lines(worker.log())
            if record.get("request_id") == request_id
            and record.get("logger") == "celery.app.trace"
            and "succeeded" in record.get("message", "")
        }

    # Celery's own "Task ... succeeded" lines, written after the task returned, carry the id.
    # The dispatching worker made the first delivery attempt itself (webhooks fan-out).
    wait_for(
        lambda: "events.dispatch" in finished_tasks(),
        30,
        f"the worker's lines for {request_id}",
    )
    [api_line] = [r for r in edge.gunicorn.request_records() if r["request_id"] == request_id]
    assert (api_line["route"], api_line["status"]) == ("/api/v1/tasks", 201)

    page = http_request(metrics_port, "GET", "/metrics", source="127.0.0.1").body.decode()
    assert (
        sample_value(page, "celery_tasks_total", task="events.dispatch", outcome="succeeded") >= 1
    )
    assert sample_value(page, "webhook_delivery_attempts_total", outcome="success") == 1
    assert sample_value(page, "celery_task_duration_seconds_count", task="events.dispatch") >= 1
