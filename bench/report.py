"""The Markdown report: the machine, the scenario table with ratios to the ceilings, the
background figures, memory, and each target met or not."""

# ruff: noqa: S603, S607, RUF001 - asks git and wrk; the Markdown uses typographic signs
from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.load import Scenario
from bench.stack import ROOT, Stack

BARE = "ceiling: bare WSGI"
FLASK = "ceiling: Flask + JWT + SELECT"
HEALTH = "GET /health/live"
CREATE = "POST /api/v1/tasks"


def machine() -> list[str]:
    """CPU model, cores, memory and kernel."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    return [
        f"- CPU: {model}; {len(os.sched_getaffinity(0))} cores usable",
        f"- Memory: {memory_kib / 1024 / 1024:.1f} GiB",
        f"- Kernel: {platform.system()} {platform.release()}",
    ]


def versions(stack: Stack, wrk: str) -> list[str]:
    """Versions of everything in the measured path."""
    with stack.engine().connect() as connection:
        postgres = connection.execute(sa.text("SHOW server_version")).scalar_one()
        sync = connection.execute(sa.text("SHOW synchronous_commit")).scalar_one()
        fsync = connection.execute(sa.text("SHOW fsync")).scalar_one()
    client = stack.redis()
    redis_version = client.info("server")["redis_version"]
    client.close()
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    packages = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in (
            "gunicorn",
            "Flask",
            "flask-smorest",
            "marshmallow",
            "SQLAlchemy",
            "psycopg2-binary",
            "celery",
            "kombu",
            "redis",
            "PyJWT",
            "Flask-Limiter",
            "prometheus_client",
        )
    )
    return [
        f"- Python {platform.python_version()}; {packages}",
        f"- PostgreSQL {postgres} (fsync {fsync}, synchronous_commit {sync}); "
        f"Redis {redis_version}",
        f"- {(wrk_version.stdout or wrk_version.stderr).splitlines()[0].strip()}",
    ]


def commit() -> str:
    """The commit measured (with a mark when the tree had changes)."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "app", "deploy", "wsgi.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"


def _ratio(scenario: Scenario, ceiling: Scenario | None) -> str:
    if ceiling is None:
        return ""
    return f"{scenario.median.requests_per_second / ceiling.median.requests_per_second:.2f}"


SERVICE_GROUPS = ("server", "postgresql", "redis")


def service_cpu_ms(scenario: Scenario) -> float:
    """CPU milliseconds per request of the server, PostgreSQL and Redis together (median run)."""
    run = scenario.median
    cores = sum(run.cpu_cores.get(group, 0.0) for group in SERVICE_GROUPS)
    return cores / run.requests_per_second * 1000 if run.requests_per_second > 0 else float("inf")


def cpu_ratio(scenario: Scenario, ceiling: Scenario | None) -> float | None:
    """The ceiling's service CPU per request ÷ the scenario's: the req/s ratio the two would
    reach on a machine of their own once the CPUs are the limit. It holds when other work on
    the machine changes between the runs, which the req/s ratio does not."""
    if ceiling is None:
        return None
    return service_cpu_ms(ceiling) / service_cpu_ms(scenario)


def _cpu_ratio_text(scenario: Scenario, ceiling: Scenario | None) -> str:
    ratio = cpu_ratio(scenario, ceiling)
    return "" if ratio is None else f"{ratio:.2f}"


def _ceiling_of(name: str, scenarios: dict[str, Scenario]) -> Scenario | None:
    if name.startswith("ceiling") or "login" in name:
        return None
    if name == HEALTH:
        return scenarios.get(BARE)
    return scenarios.get(FLASK)


def _per_request(cores: float, requests_per_second: float) -> str:
    return f"{cores / requests_per_second * 1000:.2f}" if requests_per_second > 0 else "–"


def _low_rate(facts: dict[str, Any]) -> list[str]:
    low = facts.get("latency_low")
    if low is None:
        return []
    return [
        f"- The same at {low.rate:.0f} events/s (far below the worker's capacity: the chain's "
        f"own latency, no backlog): p50 {low.p50_ms:.1f} ms, p99 {low.p99_ms:.1f} ms, max "
        f"{low.max_ms:.1f} ms ({low.arrived}/{low.events} arrived)."
    ]


def _hop(facts: dict[str, Any], name: str) -> str:
    low = facts.get("latency_low")
    if low is None or name not in low.hops_ms:
        return "– | –"
    mid, p99 = low.hops_ms[name]
    return f"{mid:.1f} | {p99:.1f}"


def scenario_table(scenarios: dict[str, Scenario]) -> list[str]:
    """One row per scenario: the median run, with the min and max of the three."""
    lines = [
        "| scenario | conns | req/s median (min–max) | × ceiling | × ceiling by CPU "
        "| p50 ms (min–max) "
        "| p99 ms (min–max) | errors | CPU cores: server / PostgreSQL / Redis / wrk "
        "| server CPU ms/req | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, scenario in scenarios.items():
        run = scenario.median
        cpu = run.cpu_cores
        p50_low, p50_high = scenario.p50_spread
        p99_low, p99_high = scenario.p99_spread
        lines.append(
            f"| {name} | {scenario.connections} | "
            f"{run.requests_per_second:,.0f} ({scenario.rps_min:,.0f}–"
            f"{scenario.rps_max:,.0f}) | {_ratio(scenario, _ceiling_of(name, scenarios))} | "
            f"{_cpu_ratio_text(scenario, _ceiling_of(name, scenarios))} | "
            f"{run.p50_ms:.1f} ({p50_low:.1f}–{p50_high:.1f}) | {run.p99_ms:.1f} "
            f"({p99_low:.1f}–{p99_high:.1f}) | {scenario.errors} | "
            f"{cpu.get('server', 0):.2f} / {cpu.get('postgresql', 0):.2f} / "
            f"{cpu.get('redis', 0):.2f} / {cpu.get('wrk', 0):.2f} | "
            f"{_per_request(cpu.get('server', 0), run.requests_per_second)} | "
            f"{run.load_average:.1f} |"
        )
    return lines


def _find(scenarios: dict[str, Scenario], prefix: str, large: bool | None = None) -> list[Scenario]:
    found = [s for name, s in scenarios.items() if name.startswith(prefix)]
    if large is not None and len(found) == 2:
        return [found[1] if large else found[0]]
    return found


def targets(scenarios: dict[str, Scenario], facts: dict[str, Any]) -> list[str]:
    """Each target of the issue with the measured value and whether it is met."""
    rows: list[tuple[str, str, bool]] = []
    flask = scenarios.get(FLASK)
    bare = scenarios.get(BARE)
    listing = _find(scenarios, "GET /api/v1/tasks?", large=False)
    if flask and listing:
        ratio = listing[0].median.requests_per_second / flask.median.requests_per_second
        by_cpu = cpu_ratio(listing[0], flask) or 0.0
        rows.append(("list ≥ 0.6 × Flask ceiling (req/s)", f"{ratio:.2f}", ratio >= 0.6))
        rows.append(("list ≥ 0.6 × Flask ceiling (by CPU)", f"{by_cpu:.2f}", by_cpu >= 0.6))
        p99 = listing[0].median.p99_ms
        rows.append(("list p99 ≤ 60 ms", f"{p99:.1f} ms", p99 <= 60))
    create = scenarios.get(CREATE)
    if flask and create:
        ratio = create.median.requests_per_second / flask.median.requests_per_second
        by_cpu = cpu_ratio(create, flask) or 0.0
        rows.append(("create ≥ 0.5 × Flask ceiling (req/s)", f"{ratio:.2f}", ratio >= 0.5))
        rows.append(("create ≥ 0.5 × Flask ceiling (by CPU)", f"{by_cpu:.2f}", by_cpu >= 0.5))
        rows.append(
            ("create p99 ≤ 80 ms", f"{create.median.p99_ms:.1f} ms", create.median.p99_ms <= 80)
        )
    health = scenarios.get(HEALTH)
    if bare and health:
        ratio = health.median.requests_per_second / bare.median.requests_per_second
        by_cpu = cpu_ratio(health, bare) or 0.0
        rows.append(("health/live ≥ 0.5 × bare WSGI (req/s)", f"{ratio:.2f}", ratio >= 0.5))
        rows.append(("health/live ≥ 0.5 × bare WSGI (by CPU)", f"{by_cpu:.2f}", by_cpu >= 0.5))
    for prefix, label in (("GET /api/v1/tasks?", "list"), ("GET /api/v1/tasks/{id}", "get")):
        pair = _find(scenarios, prefix)
        if len(pair) == 2:
            slowdown = pair[0].median.requests_per_second / pair[1].median.requests_per_second
            rows.append((f"{label}: req/s small ÷ large ≤ 1.2", f"{slowdown:.2f}", slowdown <= 1.2))
            by_cpu = service_cpu_ms(pair[1]) / service_cpu_ms(pair[0])
            rows.append(
                (f"{label}: CPU/request large ÷ small ≤ 1.2", f"{by_cpu:.2f}", by_cpu <= 1.2)
            )
    latency = facts.get("latency")
    if latency is not None:
        rows.append(
            ("event → webhook p50 ≤ 25 ms", f"{latency.p50_ms:.1f} ms", latency.p50_ms <= 25)
        )
        rows.append(
            ("event → webhook p99 ≤ 150 ms", f"{latency.p99_ms:.1f} ms", latency.p99_ms <= 150)
        )
    if "worker_rate" in facts:
        ratio = facts["worker_rate"] / facts["ceiling_post_rate"]
        rows.append(("worker ≥ 0.6 × bare signed-POST task", f"{ratio:.2f}", ratio >= 0.6))
        mib = facts["celery_child_rss_kib"] / 1024
        rows.append(("Celery child ≤ 80 MB RSS", f"{mib:.0f} MiB", mib <= 80))
    if "gunicorn_worker_rss_kib" in facts:
        mib = facts["gunicorn_worker_rss_kib"] / 1024
        rows.append(("gunicorn worker ≤ 120 MB RSS", f"{mib:.0f} MiB", mib <= 120))
    lines = ["| target | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in rows]
    return lines


def render(scenarios: dict[str, Scenario], facts: dict[str, Any]) -> str:
    """The whole report."""
    load = facts["load"]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results" + (" (quick mode: not for comparison)" if facts["quick"] else ""),
        "",
        f"Measured {facts.get('finished_at', now)} at commit {facts.get('commit') or commit()} "
        "by `make bench"
        + ("-quick`" if facts["quick"] else "`")
        + f" in {facts['elapsed_seconds'] / 60:.0f} min.",
        "",
        "## Machine",
        *machine(),
        *facts.get("versions", []),
        "",
        "## How",
        f"- Server: gunicorn with `deploy/gunicorn.conf.py`, {facts['workers']} processes × "
        f"{facts['threads']} threads (gthread), the same for both ceilings; APP_ENV=production, "
        "JSON request log at INFO to a file, Prometheus multiprocess metrics, rate limits counted "
        "in Redis with limits nobody reaches.",
        f"- Load: wrk, {load.threads} threads, {load.connections} connections, on the same "
        f"machine; per scenario {load.runs} runs of {load.run_seconds} s, each after a "
        f"{load.warmup_seconds} s warm-up. The row is the median run; min–max over the runs.",
        f"- Data: the user owns {facts['user_tasks']:,} tasks; the large runs add other users' "
        "tasks around them. Ratio (× ceiling): req/s ÷ the ceiling's req/s in the same run "
        "(health/live ÷ bare WSGI, the others ÷ the Flask ceiling). By CPU: the ceiling's CPU "
        "per request (server + PostgreSQL + Redis) ÷ the scenario's, the req/s ratio the two "
        "reach once the CPUs are the limit; it holds when other work on the machine changes "
        "between runs, which the req/s ratio does not.",
        "- Errors: socket errors, timeouts and non-2xx/3xx responses, all runs added up.",
        "- CPU: cores used during the median run (CPU seconds ÷ wall seconds) by the gunicorn "
        "master and workers, the PostgreSQL backends of the benchmark's database and the "
        "server's background processes, Redis, and wrk. Server CPU ms/req is the server's CPU "
        "per request: less sensitive than req/s to what else runs on the machine. Load: the "
        "machine's 1-minute load average after the run (2 cores: above 2, other work competed "
        "for the CPUs and every figure of that row is pessimistic).",
        "",
        "## API",
        *scenario_table(scenarios),
        "",
    ]
    if "argon2" in facts:
        lines.append(f"Login cost: {facts['argon2']} (each login verifies one hash).")
        lines.append("")
    latency = facts.get("latency")
    if latency is not None:
        low = facts.get("latency_low")
        low_rate = f"{low.rate:.0f}" if low is not None else "–"
        lines += [
            "## Background",
            f"- Event → webhook (response of `POST /api/v1/tasks` to the delivery arriving at a "
            f"loopback receiver), {latency.rate:.0f} events/s for {latency.events} events, one "
            f"worker (prefork, 2 processes) on events and notifications: p50 "
            f"{latency.p50_ms:.1f} ms, p99 {latency.p99_ms:.1f} ms, max {latency.max_ms:.1f} ms "
            f"({latency.arrived}/{latency.events} arrived).",
            "",
            *_low_rate(facts),
            "",
            f"| hop (service timestamps) | {low_rate} events/s: median ms | p99 ms "
            f"| {latency.rate:.0f} events/s: median ms | p99 ms |",
            "|---|---|---|---|---|",
            *[
                f"| {name} | {_hop(facts, name)} | {mid:.1f} | {p99:.1f} |"
                for name, (mid, p99) in latency.hops_ms.items()
            ],
            "",
            f"- Deliveries per second, {facts['deliveries']} queued, one worker (prefork, 2 "
            f"processes) on the notifications queue: **{facts['worker_rate']:.0f}/s**; ceilings "
            f"on the same broker: bare Celery task doing the same signed POST "
            f"{facts['ceiling_post_rate']:.0f}/s (ratio "
            f"{facts['worker_rate'] / facts['ceiling_post_rate']:.2f}), no-op task "
            f"{facts['ceiling_noop_rate']:.0f}/s.",
            "",
        ]
    if "background_error" in facts:
        lines += ["## Background", f"Failed: `{facts['background_error']}`", ""]
    lines += ["## Memory"]
    for key, what in (
        ("gunicorn_worker", "gunicorn worker (largest, after the API runs)"),
        ("celery_child", "Celery worker child (largest, after the delivery run)"),
    ):
        if f"{key}_rss_kib" in facts:
            pss, private = facts.get(f"{key}_pss_private_kib", (0, 0))
            lines.append(
                f"- {what}: {facts[f'{key}_rss_kib'] / 1024:.0f} MiB RSS; PSS {pss / 1024:.0f} "
                f"MiB, private {private / 1024:.0f} MiB (RSS counts the pages it shares with the "
                "process it was forked from; private is what one more such process costs)"
            )
    lines += ["", "## Targets", *targets(scenarios, facts), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    import pickle
    import sys

    # Render a saved run again (bench/results/*.pickle, written by bench.run).
    saved_scenarios, saved_facts = pickle.loads(Path(sys.argv[1]).read_bytes())  # noqa: S301
    print(render(saved_scenarios, saved_facts))
