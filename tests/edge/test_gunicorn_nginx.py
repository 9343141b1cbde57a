"""A real gunicorn with 3 workers behind a real nginx (the compose load balancer's configuration),
on loopback: metrics add up across workers, the client's real address reaches the log and the
rate limiter, a limit holds whichever worker serves, and SIGTERM loses no in-flight request."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.edge.conftest import Edge
from tests.factories import DEFAULT_PASSWORD
from tests.support.edge import CLIENT_ADDRESS, Response, http_request
from tests.support.live import wait_for

pytestmark = pytest.mark.slow

TASK_ROUTE = "/api/v1/tasks/<int(max=9223372036854775807):task_id>"
NGINX_ADDRESS = "127.0.0.1"  # the address nginx connects to gunicorn from


def request_id() -> str:
    """A well-formed X-Request-ID the app keeps."""
    return f"edge-{uuid.uuid4().hex}"


def scrape(edge: Edge, source: str = "127.0.0.1") -> Response:
    """GET /metrics straight from gunicorn, as Prometheus scrapes a replica."""
    return http_request(edge.gunicorn.port, "GET", "/metrics", source=source)


def sample_value(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` with ``labels`` in a Prometheus text page (0 if absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def pids_with_counters(edge: Edge) -> set[int]:
    """Workers that have counted something (each writes its own counter file)."""
    pids = {
        int(path.stem.split("_")[-1]) for path in edge.gunicorn.metrics_dir.glob("counter_*.db")
    }
    return pids & edge.gunicorn.worker_pids()


def test_metrics_add_up_across_workers(make_edge: Callable[..., Edge]) -> None:
    edge = make_edge(METRICS_ALLOWED_IPS="127.0.0.1")
    token = edge.sign_up("metrics@example.com")
    auth = {"Authorization": f"Bearer {token}"}
    created = edge.call("POST", "/api/v1/tasks", body={"title": "counted"}, headers=auth)
    assert created.status == 201
    task_path = f"/api/v1/tasks/{created.json()['id']}"

    requests = 60
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(lambda _: edge.call("GET", task_path, headers=auth).status, range(requests))
        )
    assert statuses == [200] * requests
    served_by = {
        record["pid"] for record in edge.gunicorn.request_records() if record["route"] == TASK_ROUTE
    }
    assert len(served_by) >= 2, "the requests should have been spread over several workers"
    assert len(pids_with_counters(edge)) >= 2

    page = scrape(edge)
    assert page.status == 200
    text = page.body.decode()
    # Whichever worker answered the scrape, it reports every worker's requests.
    counted = sample_value(
        text, "http_requests_total", method="GET", route=TASK_ROUTE, status="200"
    )
    assert counted == requests
    histogram_count = sample_value(
        text, "http_request_duration_seconds_count", method="GET", route=TASK_ROUTE
    )
    assert histogram_count == requests
    assert sample_value(text, "database_gauges_up") == 1

    # Not public: the load balancer refuses it, and so does the app for any other address.
    assert edge.call("GET", "/metrics").status == 404
    assert scrape(edge, source=CLIENT_ADDRESS).status == 404


def test_real_client_address_is_logged_and_limited_whichever_worker_serves(
    make_edge: Callable[..., Edge],
) -> None:
    limit = 10
    edge = make_edge(RATELIMIT_LOGIN_PER_IP=f"{limit}/minute")
    ids = [request_id() for _ in range(limit)]

    def failed_login(index: int) -> int:
        # Each claims another address; a different account each, so only the per-IP limit bites.
        return edge.call(
            "POST",
            "/api/v1/auth/login",
            body={"email": f"nobody{index}@example.com", "password": "wrong-password"},
            headers={"X-Forwarded-For": f"6.6.6.{index}", "X-Request-ID": ids[index]},
        ).status

    with ThreadPoolExecutor(max_workers=limit) as pool:
        assert list(pool.map(failed_login, range(limit))) == [401] * limit

    refused = edge.call(
        "POST",
        "/api/v1/auth/login",
        body={"email": "someone-else@example.com", "password": "wrong-password"},
        headers={"X-Forwarded-For": "6.6.6.200"},
    )
    assert refused.status == 429
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) > 0

    records = {
        r["request_id"]: r for r in edge.gunicorn.request_records() if r["request_id"] in ids
    }
    assert set(records) == set(ids)
    assert {record["client_addr"] for record in records.values()} == {CLIENT_ADDRESS}
    assert all("6.6.6" not in str(record) for record in records.values())
    # The counter lives in Redis: the limit held although several workers served the attempts.
    assert len({record["pid"] for record in records.values()}) >= 2
    assert NGINX_ADDRESS != CLIENT_ADDRESS


def test_sigterm_finishes_every_accepted_request(make_edge: Callable[..., Edge]) -> None:
    # Real argon2 work makes each login take a while, so requests are in flight at SIGTERM.
    edge = make_edge(
        PASSWORD_HASH_TIME_COST="3",
        PASSWORD_HASH_MEMORY_KIB="32768",
        PASSWORD_HASH_PARALLELISM="1",
    )
    edge.sign_up("sigterm@example.com")
    credentials = {"email": "sigterm@example.com", "password": DEFAULT_PASSWORD}

    total, concurrency = 36, 12
    results: dict[str, tuple[float, Response | BaseException]] = {}
    lock = threading.Lock()

    def login(rid: str) -> None:
        try:
            outcome: Response | BaseException = edge.call(
                "POST", "/api/v1/auth/login", body=credentials, headers={"X-Request-ID": rid}
            )
        except OSError as exc:  # refused / reset before any response: never accepted
            outcome = exc
        with lock:
            results[rid] = (time.monotonic(), outcome)

    ids = [request_id() for _ in range(total)]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for rid in ids:
            pool.submit(login, rid)
        wait_for(lambda: len(results) >= 4, 60, "the first logins to finish")
        sigterm_at = time.monotonic()
        edge.gunicorn.terminate()
    assert edge.gunicorn.process.popen.wait(timeout=60) == 0

    served = {r["request_id"]: r["status"] for r in edge.gunicorn.request_records()}
    finished_after_sigterm = 0
    for rid in ids:
        answered_at, outcome = results[rid]
        if rid in served:
            # Accepted by a worker: a complete, successful answer, whenever SIGTERM came.
            assert served[rid] == 200
            assert isinstance(outcome, Response), outcome
            assert outcome.status == 200
            assert outcome.headers["x-request-id"] == rid
            assert outcome.json()["access_token"]
            finished_after_sigterm += answered_at > sigterm_at
        else:
            # Never reached a worker (sent after the listener closed): nginx says retry later.
            assert isinstance(outcome, OSError) or outcome.status in {502, 503}, outcome
    accepted = sum(rid in served for rid in ids)
    print(  # the figures of the run (pytest -s)
        f"\nSIGTERM: {total} logins sent, {accepted} accepted and answered 200 "
        f"({finished_after_sigterm} of them finished after SIGTERM), "
        f"{total - accepted} refused before reaching a worker"
    )
    assert finished_after_sigterm >= 1, "no request was in flight at SIGTERM"
    assert "WORKER TIMEOUT" not in edge.gunicorn.process.log()
