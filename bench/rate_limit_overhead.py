"""What rate limiting costs per request, and what a dead Redis adds, measured in one run.

    .venv/bin/python bench/rate_limit_overhead.py     # Redis at TEST_REDIS_URL or 127.0.0.1:6379

Serves the same request (GET /api/v1/tasks without a token: a 401 from the auth check, no
database) through Flask's test client with the limiter off, counting in memory, and counting in
Redis; then with Redis unreachable: a closed port (connection refused) and a port that accepts
connections but never answers (the worst case, bounded by RATELIMIT_STORAGE_TIMEOUT_SECONDS).
Each variant runs in a fresh process, so none inherits another's threads or warm caches.
"""

from __future__ import annotations

import logging
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from app import create_app

REQUESTS = 2000
ROUNDS = 5
PATH = "/api/v1/tasks"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def build(**overrides: Any) -> Any:
    """A test client of a fresh app with ``overrides`` and a limit nobody reaches."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    settings = {"APP_ENV": "testing", "REDIS_KEY_PREFIX": prefix, **overrides}
    return create_app(settings).test_client(), prefix


def per_request_seconds(client: Any) -> float:
    """Median over ``ROUNDS`` of the mean time of ``REQUESTS`` requests."""
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(REQUESTS):
            client.get(PATH)
        samples.append((time.perf_counter() - started) / REQUESTS)
    return statistics.median(samples)


def timed(client: Any) -> float:
    """Seconds one request takes."""
    started = time.perf_counter()
    response = client.get(PATH)
    elapsed = time.perf_counter() - started
    assert response.status_code == 401, response.status_code
    return elapsed


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


VARIANTS: dict[str, dict[str, Any]] = {
    "limiter off": {"RATELIMIT_ENABLED": False},
    "memory://": {"RATELIMIT_STORAGE_URL": "memory://"},
    "redis": {"RATELIMIT_STORAGE_URL": REDIS_URL},
    # One Redis round trip (the hit) instead of three (the hit, then GET and TTL for headers).
    "redis, no X-RateLimit headers": {
        "RATELIMIT_STORAGE_URL": REDIS_URL,
        "RATELIMIT_HEADERS_ENABLED": False,
    },
}


def measure(name: str) -> None:
    """Print the mean seconds per request of variant ``name`` (in this process)."""
    client, prefix = build(**VARIANTS[name])
    per_request_seconds(client)  # warm up
    print(per_request_seconds(client))
    if name.startswith("redis"):
        connection = redis.Redis.from_url(REDIS_URL)
        keys = list(connection.scan_iter(match=f"{prefix}*"))
        if keys:
            connection.delete(*keys)


def unreachable(name: str) -> None:
    """Print the first, steady and probing request times with Redis unreachable."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1000)  # accepts connections, never answers
    url = {
        "refused": f"redis://127.0.0.1:{closed_port()}/0",
        "never answers": f"redis://127.0.0.1:{silent.getsockname()[1]}/0",
    }[name]
    client, _ = build(RATELIMIT_STORAGE_URL=url)
    first = timed(client)
    # Then a request every 20 ms for 8 s: the limiter probes the storage after 1, 2, 4 s ...
    times = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        times.append(timed(client))
        time.sleep(0.02)
    slow = [elapsed for elapsed in times if elapsed > 0.05]
    median = statistics.median(times)
    print(
        f"  {name:14} first request {first * 1e3:6.1f} ms; then median {median * 1e6:4.0f} us, "
        f"slowest {max(times) * 1e3:6.1f} ms, {len(slow)} of {len(times)} over 50 ms (the probes)"
    )
    silent.close()


def in_child(*arguments: str) -> str:
    """Run this script with ``arguments`` in a fresh process; its output."""
    return subprocess.run(  # noqa: S603  (this very script, by absolute path)
        [sys.executable, __file__, *arguments], capture_output=True, text=True, check=True
    ).stdout.strip()


def main() -> None:
    """Print the figures."""
    logging.disable(logging.WARNING)  # the fail-open warnings are expected here
    if sys.argv[1:2] == ["--measure"]:
        measure(sys.argv[2])
        return
    if sys.argv[1:2] == ["--unreachable"]:
        unreachable(sys.argv[2])
        return
    # Interleaved, and the fastest of three kept: a busy machine only ever slows a run down.
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(3):
        for name in VARIANTS:
            samples[name].append(float(in_child("--measure", name)))
    results = {name: min(values) for name, values in samples.items()}
    base = results["limiter off"]
    print(
        f"GET {PATH} (401), median of {ROUNDS} x {REQUESTS} requests, one process each, "
        "best of 3 runs:"
    )
    for name, seconds in results.items():
        extra = seconds - base
        print(
            f"  {name:30} {seconds * 1e6:8.0f} us/request"
            + (f"   limiter adds {extra * 1e6:6.0f} us ({extra / base:+.0%})" if extra else "")
        )
    print("Redis unreachable (fail open; requests then counted per process):")
    for name in ("refused", "never answers"):
        print(in_child("--unreachable", name))


if __name__ == "__main__":
    main()
