"""Every worker command the project ships consumes every queue the app routes tasks to: a queue
nobody consumes keeps its messages (emails, webhooks, jobs) forever."""

from __future__ import annotations

import re

import pytest

from app.celery_app import QUEUES
from app.config import PROJECT_ROOT

# Where a worker command is written: "-Q a,b" on one line, or "- -Q" then "- a,b" in YAML.
WORKER_COMMANDS = (
    "README.md",
    "Dockerfile",
    "docker-compose.yml",
    "deploy/Procfile.dev",
    "deploy/k8s/base/worker-deployment.yaml",
)
QUEUE_LIST = re.compile(r"-Q(?: |\s*\n\s*- )([a-z,]+)")


@pytest.mark.parametrize("path", WORKER_COMMANDS)
def test_the_worker_command_consumes_every_queue(path: str) -> None:
    text = (PROJECT_ROOT / path).read_text()
    lists = [found for found in QUEUE_LIST.findall(text) if "," in found]
    assert lists, f"{path} names the worker's queues"
    for found in lists:
        assert set(found.split(",")) == set(QUEUES), f"{path}: -Q {found}"
