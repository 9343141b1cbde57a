"""The service's Prometheus metrics, defined once per process.

A leaf module (it imports only ``prometheus_client``), so any layer may count something here.
Whether values live in this process's memory or in per-process files that ``/metrics`` adds up
(several gunicorn workers, Celery's prefork children) is decided by prometheus_client itself,
from ``PROMETHEUS_MULTIPROC_DIR`` in the environment when it is first imported.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Latency buckets for HTTP requests: 5 ms to 10 s, dense where an API answers (10-500 ms).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Background tasks run longer: up to the 330 s hard time limit.
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

HTTP_REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from the request reaching Flask to its response being ready, by route template.",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)
CELERY_TASKS = Counter(
    "celery_tasks",
    "Celery task runs by task name and outcome (succeeded, failed, retried).",
    ["task", "outcome"],
)
CELERY_TASK_DURATION = Histogram(
    "celery_task_duration_seconds",
    "Time a Celery task ran, by task name (whatever its outcome).",
    ["task"],
    buckets=TASK_BUCKETS,
)
WEBHOOK_DELIVERY_ATTEMPTS = Counter(
    "webhook_delivery_attempts",
    "Webhook delivery attempts by outcome (success, transient, permanent, skipped).",
    ["outcome"],
)
# Counted by the rate limiter each time its storage (Redis) fails and it serves the request
# from its per-process fallback instead (fail open).
RATE_LIMIT_STORAGE_ERRORS = Counter(
    "rate_limit_storage_errors",
    "Rate-limit storage (Redis) errors; the request was served with the in-process fallback.",
)
