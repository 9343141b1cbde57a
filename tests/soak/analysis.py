"""The soak's figures from what was recorded: errors by kind, latency over time, memory growth,
recovery after each fault, delivery delays. Pure functions, unit-tested in test_analysis.py."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tests.soak.faults import POSTGRES_RESTART, Fault, Plan
from tests.soak.monitor import MemorySample
from tests.soak.traffic import Sample

MEMORY_GROWTH_LIMIT = 0.10


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def unavailable_windows(plan: Plan) -> list[tuple[float, float]]:
    """When a 503 is the expected answer: PostgreSQL down, plus the recovery grace."""
    return [
        (fault.started, fault.up_at + plan.recovery_grace)
        for fault in plan.faults
        if fault.kind == POSTGRES_RESTART and fault.started is not None and fault.up_at is not None
    ]


@dataclass
class Outcomes:
    """Every request sorted by what it proves."""

    total: int
    ok: int
    rate_limited: int
    unavailable_during_faults: int
    errors: Counter[str]  # detail -> count (5xx, 503 outside a fault, connection, wrong body)

    @property
    def error_count(self) -> int:
        """Requests that went wrong."""
        return sum(self.errors.values())


def outcomes(samples: Iterable[Sample], plan: Plan) -> Outcomes:
    """Count samples by kind; a 503 not in flight during a PostgreSQL window is an error."""
    windows = unavailable_windows(plan)
    total = ok = limited = expected_503 = 0
    errors: Counter[str] = Counter()
    for sample in samples:
        total += 1
        if sample.kind == "ok":
            ok += 1
        elif sample.kind == "rate_limited":
            limited += 1
        elif sample.kind == "unavailable" and any(
            # In flight at some point of the window (sent just before the stop counts).
            sample.at <= end and sample.at + sample.seconds >= start
            for start, end in windows
        ):
            expected_503 += 1
        elif sample.kind == "unavailable":
            errors["503 outside a PostgreSQL outage"] += 1
        else:
            errors[sample.detail or f"status {sample.status}"] += 1
    return Outcomes(total, ok, limited, expected_503, errors)


@dataclass(frozen=True)
class Bucket:
    """Requests sent during one slice of the run."""

    start: float
    requests: int
    p50: float
    p99: float
    worst: float
    rate_limited: int
    unavailable: int
    errors: int


def buckets(samples: Iterable[Sample], size: float, seconds: float) -> list[Bucket]:
    """Latency and counts per ``size`` seconds (429s are left out of the latencies)."""
    grouped: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        if 0 <= sample.at < seconds:
            grouped[int(sample.at // size)].append(sample)
    rows = []
    for index in range(math.ceil(seconds / size)):
        group = grouped.get(index, [])
        timed = [s.seconds for s in group if s.kind != "rate_limited"]
        rows.append(
            Bucket(
                start=index * size,
                requests=len(group),
                p50=percentile(timed, 0.50),
                p99=percentile(timed, 0.99),
                worst=max(timed, default=0.0),
                rate_limited=sum(s.kind == "rate_limited" for s in group),
                unavailable=sum(s.kind == "unavailable" for s in group),
                errors=sum(s.kind == "error" for s in group),
            )
        )
    return rows


@dataclass(frozen=True)
class Window:
    """RSS over one window, in KiB: its floor (lower quartile, judged), median and mean."""

    floor: float
    median: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[int]) -> Window | None:
        """The window's figures; None for no samples."""
        if not values:
            return None
        floats = [float(value) for value in values]
        return cls(percentile(floats, 0.25), statistics.median(floats), statistics.fmean(floats))


@dataclass(frozen=True)
class Growth:
    """One process's memory early (after its warm-up) and at its end."""

    role: str
    pid: int
    first_seen: float
    last_seen: float
    early: Window | None  # the first window after warm-up
    late: Window | None  # its last window
    peak_kib: int

    @property
    def growth(self) -> float | None:
        """Relative growth of the floor, None when the process lived too briefly to judge.

        The floor (lower quartile), not the mean: a login holds argon2's 64 MiB for one to three
        seconds on a busy machine, so a window's mean, even its median in a short window, moves
        by 10% or more with how many samples caught one. Memory a process keeps, a leak, raises
        the floor as surely as the mean (both are in the report).
        """
        if self.early is None or self.late is None or self.early.floor == 0:
            return None
        return (self.late.floor - self.early.floor) / self.early.floor

    @property
    def mean_growth(self) -> float | None:
        """Relative growth of the mean (reported, not judged)."""
        if self.early is None or self.late is None or self.early.mean == 0:
            return None
        return (self.late.mean - self.early.mean) / self.early.mean

    @property
    def flat(self) -> bool:
        """Under the limit (or too short-lived to judge)."""
        return self.growth is None or self.growth < MEMORY_GROWTH_LIMIT


def memory_growth(memory: Iterable[MemorySample], plan: Plan) -> list[Growth]:
    """Per process: the first window after warm-up against the last window it lived.

    A process that started during the run (a replaced worker) gets a warm-up of its own;
    one that lived less than warm-up plus two windows is reported but not judged.
    """
    by_pid: dict[int, list[MemorySample]] = defaultdict(list)
    for sample in memory:
        if sample.at < plan.seconds:  # the load's time, not the drain's after it
            by_pid[sample.pid].append(sample)
    rows = []
    for pid, samples in by_pid.items():
        samples.sort(key=lambda s: s.at)
        first, last = samples[0].at, samples[-1].at
        # Present from the start: the run's warm-up; started later: a warm-up of its own.
        early_start = plan.warmup if first < plan.warmup / 2 else first + plan.warmup
        late_start = last - plan.window
        judged = late_start >= early_start + plan.window
        early = [s.rss_kib for s in samples if early_start <= s.at < early_start + plan.window]
        late = [s.rss_kib for s in samples if s.at >= late_start]
        rows.append(
            Growth(
                role=samples[0].role,
                pid=pid,
                first_seen=first,
                last_seen=last,
                early=Window.of(early) if judged else None,
                late=Window.of(late) if judged else None,
                peak_kib=max(s.rss_kib for s in samples),
            )
        )
    return sorted(rows, key=lambda row: (row.role, row.first_seen, row.pid))


@dataclass(frozen=True)
class Recovery:
    """How the API answered around one fault."""

    unavailable: int  # 503s sent from the injection until the grace ended
    errors: int  # other failures in the same span
    first_unavailable: float | None
    last_unavailable: float | None
    recovered_after: float | None  # from the service being back to the last 503 (0: at once)
    p99_during: float  # latency of requests sent while the service was down


def recovery(samples: Sequence[Sample], fault: Fault, plan: Plan) -> Recovery:
    """503s, errors and recovery time around ``fault``."""
    if fault.started is None or fault.up_at is None:
        return Recovery(0, 0, None, None, None, 0.0)
    # Only PostgreSQL's outage outlives its restart (pools reconnect); the others end when the
    # service is back, and a later fault's requests must not be counted against them.
    end = fault.up_at + (plan.recovery_grace if fault.kind == POSTGRES_RESTART else 0.0)
    # In flight at some point of the span, as in ``outcomes``.
    span = [s for s in samples if s.at <= end and s.at + s.seconds >= fault.started]
    unavailable = [s.at for s in span if s.kind == "unavailable"]
    down = [s.seconds for s in span if s.at <= fault.up_at and s.kind != "rate_limited"]
    last = max(unavailable, default=None)
    return Recovery(
        unavailable=len(unavailable),
        errors=sum(s.kind == "error" for s in span),
        first_unavailable=min(unavailable, default=None),
        last_unavailable=last,
        recovered_after=max(0.0, last - fault.up_at) if last is not None else 0.0,
        p99_during=percentile(down, 0.99),
    )


def per_operation(samples: Iterable[Sample]) -> dict[str, tuple[int, Counter[int], float, float]]:
    """Operation -> (count, statuses, p50, p99 of the non-429 answers)."""
    grouped: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        grouped[sample.op].append(sample)
    table = {}
    for op, group in sorted(grouped.items()):
        timed = [s.seconds for s in group if s.kind != "rate_limited"]
        statuses: Counter[int] = Counter(s.status for s in group)
        table[op] = (len(group), statuses, percentile(timed, 0.5), percentile(timed, 0.99))
    return table


def delivery_delays(
    event_times: dict[str, float], delivered: dict[str, str], first_seen: dict[str, float]
) -> dict[str, float]:
    """Delivery id -> seconds from its event's commit to its first arrival at the receiver.

    ``event_times``: event id -> soak time it was recorded; ``delivered``: delivery id ->
    event id.
    """
    delays = {}
    for delivery_id, event_id in delivered.items():
        if delivery_id in first_seen and event_id in event_times:
            delays[delivery_id] = max(0.0, first_seen[delivery_id] - event_times[event_id])
    return delays
