"""The soak's Markdown report (bench/results/soak-latest.md) and its verdict."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from tests.soak import analysis
from tests.soak.faults import POSTGRES_RESTART, REDIS_STOP, WORKER_KILL, Fault, Plan
from tests.soak.ledger import Ledger
from tests.soak.monitor import Death, MemorySample
from tests.soak.traffic import Sample

FAULT_TITLES = {
    WORKER_KILL: "SIGKILL the Celery worker (whole process group), start a new one",
    POSTGRES_RESTART: "PostgreSQL stopped (fast), started again",
    REDIS_STOP: "Redis stopped, started again empty",
}


@dataclass
class SoakResult:
    """Everything a soak recorded."""

    label: str
    plan: Plan
    clients: int
    webhook_users: int
    samples: list[Sample]
    memory: list[MemorySample]
    load: list[tuple[float, float]]
    deaths: list[Death]
    ledger: Ledger | None
    drain_seconds: float
    event_times: dict[str, float]  # event id -> soak time recorded
    first_seen: dict[str, float]  # webhook-id -> soak time first received
    setup: dict[str, str] = field(default_factory=dict)
    fault_errors: list[str] = field(default_factory=list)

    @property
    def outcomes(self) -> analysis.Outcomes:
        """Requests by kind."""
        return analysis.outcomes(self.samples, self.plan)

    @property
    def growth(self) -> list[analysis.Growth]:
        """Memory per process."""
        return analysis.memory_growth(self.memory, self.plan)

    @property
    def delays(self) -> dict[str, float]:
        """Delivery id -> seconds from event to arrival."""
        if self.ledger is None:
            return {}
        delivered = {key: event for key, (event, _, _) in self.ledger.deliveries.items()}
        return analysis.delivery_delays(self.event_times, delivered, self.first_seen)


def verdict(result: SoakResult) -> list[tuple[str, bool, str]]:
    """(check, passed, figures) for each promise of the soak."""
    outcomes = result.outcomes
    growth = result.growth
    judged = [row for row in growth if row.growth is not None]
    worst = max(judged, key=lambda row: row.growth or 0.0, default=None)
    ledger = result.ledger
    unexpected_deaths = [
        death for death in result.deaths if death.role.startswith(("nginx", "gun"))
    ]
    checks = [
        (
            "0 errors other than intended 429s",
            outcomes.error_count == 0,
            f"{outcomes.error_count} errors in {outcomes.total} requests "
            f"({outcomes.rate_limited} 429s, {outcomes.unavailable_during_faults} 503s "
            "during the PostgreSQL outage)",
        ),
        (
            "memory flat (growth under 10% after warm-up)",
            bool(judged) and all(row.flat for row in growth),
            f"{len(judged)} processes judged; largest growth "
            + (f"{worst.growth:+.1%} ({worst.role}, pid {worst.pid})" if worst else "n/a"),
        ),
        (
            "faults injected as planned",
            all(f.up_at is not None and not f.failure for f in result.plan.faults),
            ", ".join(f"{f.kind}: {f.failure or 'done'}" for f in result.plan.faults) or "none",
        ),
        ("nginx and gunicorn never died", not unexpected_deaths, f"{len(unexpected_deaths)} died"),
    ]
    if ledger is None:
        checks.append(("every event delivered", False, "the database could not be read"))
        return checks
    checks += [
        (
            "every event delivered",
            ledger.settled and not ledger.unknown_received and not ledger.misrouted,
            f"{len(ledger.expected)} task events of users with a webhook; "
            f"{len(ledger.deliveries)} deliveries, {len(ledger.received_ids)} distinct "
            f"webhook-ids received, {len(ledger.without_delivery)} events without a delivery, "
            f"{len(ledger.not_succeeded)} deliveries not succeeded, "
            f"{len(ledger.not_received)} not received; {ledger.duplicates} duplicates",
        ),
        (
            "every job finished",
            set(ledger.jobs) <= {"succeeded"},
            ", ".join(f"{state}: {count}" for state, count in sorted(ledger.jobs.items())),
        ),
    ]
    return checks


def seconds(value: float | None) -> str:
    """A duration or time for a table cell."""
    return "-" if value is None else f"{value:.1f} s"


def mib(kib: float) -> str:
    """KiB as MiB."""
    return f"{kib / 1024:.1f} MiB"


def millis(value: float) -> str:
    """Seconds as milliseconds."""
    return f"{value * 1000:.0f} ms"


def render(result: SoakResult) -> str:
    """The whole report."""
    plan = result.plan
    checks = verdict(result)
    passed = all(ok for _, ok, _ in checks)
    lines = [
        f"# Soak report: {result.label}",
        "",
        f"**{'PASS' if passed else 'FAIL'}**. {plan.seconds:.0f} s of mixed traffic from "
        f"{result.clients} simulated users ({result.webhook_users} with a webhook, 1 greedy) "
        "through nginx to 2 gunicorn instances (2 workers x 4 threads each), a throwaway "
        "PostgreSQL and Redis, a Celery worker (2 processes) and beat delivering webhooks to a "
        "local receiver. Generated by `make soak` (`tests/soak/`); see docs/reliability.md.",
        "",
        "| check | result | figures |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {'pass' if ok else '**FAIL**'} | {text} |" for name, ok, text in checks]
    lines += ["", *requests_section(result), "", *faults_section(result), ""]
    lines += [*events_section(result), "", *memory_section(result), ""]
    lines += [*latency_section(result), "", *setup_section(result), ""]
    return "\n".join(lines)


def requests_section(result: SoakResult) -> list[str]:
    """Per operation, and the errors by kind."""
    outcomes = result.outcomes
    lines = [
        "## Requests",
        "",
        f"{outcomes.total} requests ({outcomes.total / result.plan.seconds:.1f}/s): "
        f"{outcomes.ok} as expected, {outcomes.rate_limited} rate-limited (429, intended), "
        f"{outcomes.unavailable_during_faults} unavailable during the PostgreSQL outage "
        f"(503), {outcomes.error_count} errors.",
        "",
        "| operation | requests | statuses | p50 | p99 |",
        "|---|---:|---|---:|---:|",
    ]
    for op, (count, statuses, p50, p99) in analysis.per_operation(result.samples).items():
        shown = ", ".join(f"{code or 'no answer'}: {n}" for code, n in sorted(statuses.items()))
        lines.append(f"| {op} | {count} | {shown} | {millis(p50)} | {millis(p99)} |")
    lines += ["", "Errors by kind:", ""]
    if not outcomes.errors:
        lines.append("- none")
    lines += [f"- {count} x {detail}" for detail, count in outcomes.errors.most_common(20)]
    return lines


def faults_section(result: SoakResult) -> list[str]:
    """One row per fault."""
    lines = [
        "## Faults",
        "",
        "| fault | at | down for | 503s | other errors | recovered after | p99 while down "
        "| events recorded meanwhile | their slowest delivery |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    delays = result.delays
    ledger = result.ledger
    for fault in result.plan.faults:
        outcome = analysis.recovery(result.samples, fault, result.plan)
        events, slowest = events_during(result, fault, delays, ledger)
        down = (
            None
            if fault.up_at is None or fault.down_at is None
            else fault.up_at - (fault.started or fault.down_at)
        )
        recovered = "-" if fault.kind != POSTGRES_RESTART else seconds(outcome.recovered_after)
        lines.append(
            f"| {FAULT_TITLES[fault.kind]}{' (' + fault.failure + ')' if fault.failure else ''} "
            f"| {seconds(fault.started)} | {seconds(down)} | {outcome.unavailable} "
            f"| {outcome.errors} | {recovered} | {millis(outcome.p99_during)} | {events} "
            f"| {seconds(slowest)} |"
        )
    for death in result.deaths:
        lines.append(
            f"\nProcess exit at {death.at:.0f} s: {death.role} (code {death.exit_code}), "
            f"{'replaced by the supervisor' if death.replaced else 'NOT replaced'}. Last lines:"
        )
        lines += ["", "```", death.log_tail.strip()[-1200:], "```"]
    for error in result.fault_errors:
        lines += ["", "```", error.strip(), "```"]
    return lines


def events_during(
    result: SoakResult, fault: Fault, delays: dict[str, float], ledger: Ledger | None
) -> tuple[int, float | None]:
    """Task events recorded from the fault's start until 5 s after its end; slowest delivery."""
    if ledger is None or fault.started is None or fault.up_at is None:
        return 0, None
    start, end = fault.started, fault.up_at + 5
    events = {
        event_id
        for event_id in ledger.expected
        if start <= result.event_times.get(event_id, -1.0) <= end
    }
    slowest = [
        delays[key]
        for key, (event_id, _, _) in ledger.deliveries.items()
        if event_id in events and key in delays
    ]
    return len(events), max(slowest, default=None)


def events_section(result: SoakResult) -> list[str]:
    """Recorded, delivered, received."""
    ledger = result.ledger
    if ledger is None:
        return ["## Events", "", "The database could not be read after the run."]
    delays = sorted(result.delays.values())
    attempts = [attempts for _, _, attempts in ledger.deliveries.values()]
    return [
        "## Events and webhooks",
        "",
        f"- task events recorded: {len(ledger.events)} ({len(ledger.expected)} of users with a "
        "webhook, each of which must arrive)",
        f"- deliveries created: {len(ledger.deliveries)}; succeeded: "
        f"{len(ledger.deliveries) - len(ledger.not_succeeded)}; attempts per delivery: max "
        f"{max(attempts, default=0)}, {sum(a > 1 for a in attempts)} needed more than one",
        f"- at the receiver: {ledger.received} POSTs, {len(ledger.received_ids)} distinct "
        f"webhook-ids, {ledger.duplicates} duplicates, {len(ledger.unknown_received)} unknown "
        f"ids, {len(ledger.bad_bodies)} bodies not a task event of the webhook's owner",
        f"- events without a delivery: {len(ledger.without_delivery)}; deliveries not "
        f"received: {len(ledger.not_received)}; delivered to the wrong user: "
        f"{len(ledger.misrouted)}",
        f"- outbox after the drain: {ledger.outbox_unpublished} unpublished, "
        f"{ledger.outbox_undispatched} not dispatched; drain took {result.drain_seconds:.0f} s",
        f"- event to receiver: p50 {seconds(analysis.percentile(delays, 0.5))}, p99 "
        f"{seconds(analysis.percentile(delays, 0.99))}, max {seconds(max(delays, default=0.0))}",
        f"- jobs: {dict(sorted(ledger.jobs.items()))}, most attempts of one job: "
        f"{ledger.job_max_attempts}",
    ]


def memory_section(result: SoakResult) -> list[str]:
    """RSS per process: early window, last window, growth."""
    plan = result.plan
    lines = [
        "## Memory (RSS)",
        "",
        f"Sampled every {result.setup.get('memory interval', '?')}. Early: the {plan.window:.0f} s "
        f"after warm-up ({plan.warmup:.0f} s into the run, or into the process's life for one "
        f"started during it); late: the process's last {plan.window:.0f} s. Growth is judged on "
        "each window's floor (lower quartile): a login holds argon2's 64 MiB for one to three "
        "seconds, so a window's mean depends on how many samples caught one; memory a process "
        "keeps raises the floor as surely (the means are shown too).",
        "",
        "| process | pid | lived | early floor | late floor | growth | mean early -> late | peak |",
        "|---|---:|---|---:|---:|---:|---|---:|",
    ]
    for row in result.growth:
        if row.early is None or row.late is None or row.growth is None:
            figures = "- | - | too short to judge | -"
        else:
            figures = (
                f"{mib(row.early.floor)} | {mib(row.late.floor)} | {row.growth:+.1%} "
                f"| {mib(row.early.mean)} -> {mib(row.late.mean)} ({row.mean_growth or 0:+.1%})"
            )
        lines.append(
            f"| {row.role} | {row.pid} | {row.first_seen:.0f}-{row.last_seen:.0f} s | {figures} "
            f"| {mib(row.peak_kib)} |"
        )
    return lines


def latency_section(result: SoakResult) -> list[str]:
    """p99 over time, with the faults marked."""
    plan = result.plan
    size = 10.0 if plan.seconds <= 180 else 60.0
    lines = [
        "## Latency over time",
        "",
        f"Per {size:.0f} s of sending time; latencies leave the 429s out (they are answered "
        "before any work).",
        "",
        "| from | requests | p50 | p99 | slowest | 429 | 503 | errors | during |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in analysis.buckets(result.samples, size, plan.seconds):
        during = [
            fault.kind
            for fault in plan.faults
            if fault.started is not None
            and fault.started < row.start + size
            and (fault.up_at or fault.started) >= row.start
        ]
        lines.append(
            f"| {row.start:.0f} s | {row.requests} | {millis(row.p50)} | {millis(row.p99)} "
            f"| {millis(row.worst)} | {row.rate_limited} | {row.unavailable} | {row.errors} "
            f"| {', '.join(during)} |"
        )
    return lines


def setup_section(result: SoakResult) -> list[str]:
    """Machine and settings."""
    loads = [load for _, load in result.load]
    lines = ["## Set-up", ""]
    lines += [f"- {key}: {value}" for key, value in result.setup.items()]
    if loads:
        lines.append(
            f"- machine load average (1 min) during the run: mean {statistics.mean(loads):.1f}, "
            f"max {max(loads):.1f}"
        )
    return lines
