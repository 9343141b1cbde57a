"""The benchmark suite: the API scenarios next to their ceilings, at two table sizes, then the
background work, written to bench/results/latest.md.

    make bench            # or: .venv/bin/python -m bench.run
    make bench-quick      # BENCH_QUICK=1: a few seconds per scenario, results in quick.md

Settings (environment): BENCH_WORKERS / BENCH_THREADS (gunicorn processes and threads, default
4 and 4, the same for the ceilings), BENCH_CONNECTIONS (wrk connections, default 32),
BENCH_LARGE_TASKS (table size of the large runs, default 1,000,000), BENCH_ONLY (comma-separated
parts to run: api, scale, background; default all), BENCH_PROFILE=<scenario> (py-spy records
one gunicorn worker during that scenario's runs; needs py-spy), BENCH_KEEP_LOGS=<dir> (copy
the service logs there).
"""

# ruff: noqa: S603 - starts py-spy on a worker it started
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import background, report  # noqa: E402
from bench.load import (  # noqa: E402
    LUA_DIR,
    CpuGroups,
    LoadSettings,
    Scenario,
    ensure_wrk,
    measure,
    postgres_processes,
)
from bench.stack import (  # noqa: E402
    READER_EMAIL,
    USER_TASKS,
    WRITER_EMAIL,
    Service,
    Stack,
    api_call,
    argon2_parameters,
    grow,
    hash_password,
    login,
    open_stack,
    private_kib,
    rss_kib,
    seed,
    start_celery,
    start_gunicorn,
    task_count,
)

RESULTS = Path(__file__).resolve().parent / "results"


def log(message: str) -> None:
    """Progress on stderr, flushed."""
    print(message, file=sys.stderr, flush=True)


def environment_int(name: str, default: int) -> int:
    """An integer from the environment."""
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def server_pids(stack: Stack) -> tuple[int, int]:
    """(postmaster pid, redis-server pid) of the servers the benchmark uses."""
    import sqlalchemy as sa

    with stack.engine().connect() as connection:
        backend = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        stat = Path(f"/proc/{backend}/stat").read_text()  # while the backend still exists
    postmaster = int(stat[stat.rindex(")") + 2 :].split()[1])
    client = stack.redis()
    redis_pid = int(client.info("server")["process_id"])
    client.close()
    return postmaster, redis_pid


def cpu_groups(stack: Stack, server: Service, postmaster: int, redis_pid: int) -> CpuGroups:
    """Server (gunicorn master and workers), PostgreSQL (this database) and Redis."""
    return CpuGroups(
        trees={"server": server.pid},
        members={
            "postgresql": lambda: postgres_processes(postmaster, stack.database_name),
            "redis": lambda: [redis_pid],
        },
    )


def profile_worker(server: Service, seconds: int, name: str) -> subprocess.Popen[bytes] | None:
    """py-spy recording one gunicorn worker for ``seconds`` (BENCH_PROFILE), or None."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        log("BENCH_PROFILE: py-spy is not installed (pip install py-spy); no profile")
        return None
    output = RESULTS / f"profile-{name}.txt"
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(server.children()[0]),
            "--duration",
            str(seconds),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(output),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class ApiBench:
    """The wrk scenarios against one running server."""

    def __init__(self, stack: Stack, wrk: str, load: LoadSettings, pids: tuple[int, int]) -> None:
        self.stack = stack
        self.wrk = wrk
        self.load = load
        self.pids = pids
        self.scenarios: dict[str, Scenario] = {}

    def run(
        self,
        name: str,
        server: Service,
        path: str,
        script: str,
        load: LoadSettings | None = None,
        **env: str,
    ) -> Scenario:
        """Measure ``name``: ``script`` against ``path`` of ``server``."""
        log(f"scenario {name}")
        load = load or self.load
        profiler = None
        profile = os.environ.get("BENCH_PROFILE", "")
        if profile and profile in name:
            seconds = (load.run_seconds + load.warmup_seconds) * load.runs
            profiler = profile_worker(server, seconds, script.removesuffix(".lua"))
        scenario = measure(
            name,
            self.wrk,
            f"http://127.0.0.1:{server.port}{path}",
            str(LUA_DIR / script),
            load,
            {
                "BENCH_FIRST_ID": str(self.stack.first_task_id),
                "BENCH_LAST_ID": str(self.stack.last_task_id),
                **env,
            },
            cpu_groups(self.stack, server, *self.pids),
            log,
        )
        if profiler is not None:
            profiler.wait()
        self.scenarios[name] = scenario
        return scenario


def run_api(bench: ApiBench, stack: Stack, large_tasks: int, parts: set[str]) -> dict[str, Any]:
    """Ceilings, then every API scenario, then list and get again on the large table."""
    facts: dict[str, Any] = {}
    secret = stack.env["SECRET_KEY"]
    bare = start_gunicorn(stack, "bench.ceilings.bare_wsgi:app", "ceiling-bare")
    bench.run("ceiling: bare WSGI", bare, "/", "plain.lua")
    bare.stop()

    api = start_gunicorn(stack, "wsgi:app", "api")
    reader = login(api.port, READER_EMAIL)
    writer = login(api.port, WRITER_EMAIL)
    flask = start_gunicorn(
        stack,
        "bench.ceilings.flask_jwt_select:app",
        "ceiling-flask",
        BENCH_DATABASE_URL=stack.database_url,
        BENCH_JWT_KEY=secret,
    )
    api.stop()  # one server at a time on two cores
    bench.run(
        "ceiling: Flask + JWT + SELECT",
        flask,
        "/api/v1/tasks?page_size=20",
        "list.lua",
        BENCH_TOKEN=reader,
    )
    flask.stop()

    api = start_gunicorn(stack, "wsgi:app", "api")
    tokens = {"BENCH_TOKEN": reader, "BENCH_WRITER_TOKEN": writer}
    bench.run("GET /health/live", api, "/health/live", "plain.lua")
    # Reads first, on the freshly vacuumed table at both sizes (like for like: the writes
    # below leave pages that are not all-visible, and counting then visits the heap).
    api = read_scenarios(bench, stack, api, tokens, facts, "small_tasks")
    if "scale" in parts:
        api.stop()
        log(f"growing the table to {large_tasks:,} tasks")
        facts["load_seconds"] = grow(stack, large_tasks)
        api = start_gunicorn(stack, "wsgi:app", "api")
        api = read_scenarios(bench, stack, api, tokens, facts, "large_tasks")
    bench.run("POST /api/v1/tasks", api, "/api/v1/tasks", "create.lua", **tokens)
    bench.run("PATCH /api/v1/tasks/{id}", api, "/api/v1/tasks/1", "patch.lua", **tokens)
    # argon2id takes a few hundred milliseconds of CPU: two logins per core at a time, and
    # runs long enough to complete some.
    login_load = replace(bench.load, connections=4, run_seconds=max(bench.load.run_seconds, 10))
    bench.run(
        "POST /api/v1/auth/login",
        api,
        "/api/v1/auth/login",
        "login.lua",
        login_load,
        BENCH_EMAIL=READER_EMAIL,
        BENCH_PASSWORD="bench-password-1234",
    )
    _, hash_seconds = hash_password(stack)
    facts["argon2"] = f"{argon2_parameters(stack)}: one hash {hash_seconds * 1000:.0f} ms"
    time.sleep(2)  # logins still hashing when wrk stopped finish first
    workers = api.children()
    facts["gunicorn_worker_rss_kib"] = max(rss_kib(pid) for pid in workers)
    facts["gunicorn_worker_pss_private_kib"] = max(private_kib(pid) for pid in workers)
    api.stop()
    return facts


def read_scenarios(
    bench: ApiBench,
    stack: Stack,
    api: Service,
    tokens: dict[str, str],
    facts: dict[str, Any],
    size_key: str,
) -> Service:
    """The list and single-task scenarios at the table's current size."""
    size = f"{task_count(stack):,}"
    facts[size_key] = size
    bench.run(
        f"GET /api/v1/tasks?page_size=20 ({size} tasks)",
        api,
        "/api/v1/tasks?page_size=20",
        "list.lua",
        **tokens,
    )
    bench.run(
        f"GET /api/v1/tasks/{{id}} ({size} tasks)", api, "/api/v1/tasks/1", "get.lua", **tokens
    )
    return api


def run_background(stack: Stack, quick: bool) -> dict[str, Any]:
    """Event-to-webhook latency, then deliveries/s of the worker and of the two ceilings."""
    facts: dict[str, Any] = {}
    client = stack.redis()
    for queue in (background.EVENTS_QUEUE, background.DELIVER_QUEUE, "unacked", "unacked_index"):
        client.delete(f"{stack.key_prefix}{queue}")  # the API scenarios' undispatched events
    client.close()
    receiver = background.Receiver()
    api = start_gunicorn(stack, "bench.loopback_app:app", "api-loopback")
    try:
        writer = login(api.port, WRITER_EMAIL)
        status, body = api_call(
            api.port,
            "POST",
            "/api/v1/webhooks",
            {"url": receiver.url(), "event_types": ["task.created"]},
            writer,
        )
        if status != 201:
            raise RuntimeError(f"webhook registration failed: {status} {body}")
        secret = str(body["secret"])
        webhook_id = str(body["id"])

        worker = start_celery(
            stack, "bench.loopback_app:celery", "worker-latency", "events,notifications"
        )
        seconds = 5 if quick else 20
        background.event_to_webhook(stack, api.port, writer, receiver, rate=50, seconds=1)
        # At a rate far below the worker's capacity first: the chain's own latency, no backlog.
        low = background.event_to_webhook(
            stack, api.port, writer, receiver, rate=10, seconds=seconds / 2
        )
        facts["latency_low"] = low
        log(f"  10 events/s: p50 {low.p50_ms:.1f} ms, p99 {low.p99_ms:.1f} ms")
        log(f"event -> webhook at 50 events/s for {seconds} s")
        latency = background.event_to_webhook(
            stack, api.port, writer, receiver, rate=50, seconds=seconds
        )
        facts["latency"] = latency
        log(
            f"  p50 {latency.p50_ms:.1f} ms, p99 {latency.p99_ms:.1f} ms, "
            f"{latency.arrived}/{latency.events} arrived; hops {latency.hops_ms}"
        )
        worker.stop()

        count = 300 if quick else 2000
        facts["deliveries"] = count
        log(f"queueing {count} deliveries")
        background.queue_deliveries(stack, webhook_id, count)

        receiver.reset()
        worker = start_celery(stack, "bench.loopback_app:celery", "worker-deliver", "notifications")
        receiver.wait_for(count, timeout=300)
        with receiver.lock:
            facts["worker_rate"] = background.rate_of(list(receiver.arrivals.values()))
        facts["celery_child_rss_kib"] = max(rss_kib(pid) for pid in worker.children())
        facts["celery_child_pss_private_kib"] = max(private_kib(pid) for pid in worker.children())
        worker.stop()
        log(f"  worker: {facts['worker_rate']:.0f} deliveries/s")

        facts["ceiling_post_rate"], facts["ceiling_noop_rate"] = ceilings(
            stack, receiver, secret, count
        )
    finally:
        api.stop()
        receiver.close()
    return facts


def ceilings(
    stack: Stack, receiver: background.Receiver, secret: str, count: int
) -> tuple[float, float]:
    """Deliveries/s of the bare signed-POST task and messages/s of the no-op task."""
    import threading

    os.environ["BENCH_BROKER_URL"] = stack.redis_url
    os.environ["BENCH_REDIS_KEY_PREFIX"] = stack.key_prefix
    from bench.ceilings import celery_tasks

    env = {"BENCH_BROKER_URL": stack.redis_url, "BENCH_REDIS_KEY_PREFIX": stack.key_prefix}
    body = '{"type":"task.created","timestamp":"2030-01-01T00:00:00+00:00","data":{"bench":1}}'
    receiver.reset()
    for _ in range(count):
        celery_tasks.signed_post.delay(
            receiver.url("/ceiling"), secret, background.new_message_id(), body
        )
    worker = start_celery(
        stack, "bench.ceilings.celery_tasks", "ceiling-post", celery_tasks.QUEUE, **env
    )
    receiver.wait_for(count, timeout=300)
    with receiver.lock:
        post_rate = background.rate_of(list(receiver.arrivals.values()))
    worker.stop()
    log(f"  ceiling signed POST: {post_rate:.0f}/s")

    for _ in range(count):
        celery_tasks.noop.delay()
    result: dict[str, float] = {}
    watcher = threading.Thread(
        target=lambda: result.update(
            rate=background.drain_rate(stack, celery_tasks.QUEUE, count, timeout=300)
        )
    )
    watcher.start()
    worker = start_celery(
        stack, "bench.ceilings.celery_tasks", "ceiling-noop", celery_tasks.QUEUE, **env
    )
    watcher.join()
    worker.stop()
    log(f"  ceiling no-op: {result['rate']:.0f}/s")
    return post_rate, result["rate"]


def main() -> None:
    """Run the suite and write the report."""
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0") or "--quick" in sys.argv
    workers = environment_int("BENCH_WORKERS", 4)
    threads = environment_int("BENCH_THREADS", 4)
    load = (
        LoadSettings(warmup_seconds=1, run_seconds=2)
        if quick
        else LoadSettings(warmup_seconds=3, run_seconds=10)
    )
    load.connections = environment_int("BENCH_CONNECTIONS", load.connections)
    large_tasks = environment_int("BENCH_LARGE_TASKS", 200_000 if quick else 1_000_000)
    parts = set(filter(None, os.environ.get("BENCH_ONLY", "api,scale,background").split(",")))
    wrk = ensure_wrk()
    RESULTS.mkdir(exist_ok=True)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as tmp,
        open_stack(Path(tmp), workers=workers, threads=threads) as stack,
    ):
        log(f"database {stack.database_name}, redis prefix {stack.key_prefix}, logs in {tmp}")
        seed(stack)
        pids = server_pids(stack)
        bench = ApiBench(stack, wrk, load, pids)
        facts: dict[str, Any] = {
            "quick": quick,
            "workers": workers,
            "threads": threads,
            "load": load,
            "user_tasks": USER_TASKS,
        }
        if "api" in parts:
            facts.update(run_api(bench, stack, large_tasks, parts))
        if "background" in parts:
            try:
                facts.update(run_background(stack, quick))
            except Exception as error:  # keep the API figures; say what failed
                log(f"background benchmark failed: {error!r}")
                facts["background_error"] = repr(error)[:300]
        facts["versions"] = report.versions(stack, wrk)
        facts["log_bytes"] = sum(p.stat().st_size for p in Path(tmp).glob("*.log"))
        keep = os.environ.get("BENCH_KEEP_LOGS", "")
        if keep:
            shutil.copytree(tmp, keep, dirs_exist_ok=True)
            log(f"logs copied to {keep}")
    facts["elapsed_seconds"] = time.monotonic() - started
    facts["commit"] = report.commit()
    facts["finished_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (RESULTS / ("quick.pickle" if quick else "latest.pickle")).write_bytes(
        pickle.dumps((bench.scenarios, facts))
    )  # python -m bench.report <file> renders it again
    text = report.render(bench.scenarios, facts)
    target = RESULTS / ("quick.md" if quick else "latest.md")
    target.write_text(text)
    print(text)
    log(f"written to {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
