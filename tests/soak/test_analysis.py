"""The soak's judgements, on recorded data: which answers are errors, when memory has grown,
how recovery is measured, when the event ledger is settled. No services needed."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.soak import analysis
from tests.soak.faults import POSTGRES_RESTART, REDIS_STOP, WORKER_KILL, Fault, Plan
from tests.soak.ledger import Ledger
from tests.soak.monitor import MemorySample
from tests.soak.stack import postmaster_options, render_two_replicas
from tests.soak.traffic import Sample, classify, task_problem
from tests.support.edge import NGINX_CONF

UNAVAILABLE = {
    "code": "service_unavailable",
    "status": 503,
    "message": "The service is temporarily unavailable. Retry later.",
    "request_id": "abc12345",
}
LIMITED = {**UNAVAILABLE, "code": "rate_limited", "status": 429, "message": "Too many."}


def plan_with_postgres_outage() -> Plan:
    """A 600 s plan whose PostgreSQL was down from 100 s to 115 s."""
    fault = Fault(POSTGRES_RESTART, 100, 15, started=100, down_at=101, up_at=115)
    return Plan(600, (fault,))


def sample(at: float, kind: str, status: int = 200, seconds: float = 0.01) -> Sample:
    """A request sent ``at`` seconds into the run."""
    return Sample(at, "get_task", status, seconds, kind)


class TestClassify:
    def test_expected_status_with_the_right_body_is_ok(self) -> None:
        assert classify(200, {}, {"id": 1}, (200,), None) == ("ok", "")

    def test_expected_status_with_a_wrong_body_is_an_error(self) -> None:
        kind, detail = classify(
            200,
            {},
            {"id": 1, "title": "old", "status": "todo"},
            (200,),
            lambda body, _h: task_problem(body, 1, "new", "todo"),
        )
        assert kind == "error"
        assert "wrong body" in detail

    def test_a_429_in_the_error_shape_with_retry_after_is_intended(self) -> None:
        assert classify(429, {"retry-after": "3"}, LIMITED, (200,), None)[0] == "rate_limited"

    def test_a_429_without_retry_after_is_an_error(self) -> None:
        assert classify(429, {}, LIMITED, (200,), None)[0] == "error"

    def test_a_503_must_have_the_standard_error_shape_and_retry_after(self) -> None:
        retry = {"retry-after": "5"}
        assert classify(503, retry, UNAVAILABLE, (200,), None)[0] == "unavailable"
        assert classify(503, {}, UNAVAILABLE, (200,), None)[0] == "error"
        html = b"<html>503 Service Temporarily Unavailable</html>"
        assert classify(503, retry, html, (200,), None)[0] == "error"
        broken = {**UNAVAILABLE, "request_id": None}
        assert classify(503, retry, broken, (200,), None)[0] == "error"

    def test_any_other_status_is_an_error_naming_the_code(self) -> None:
        kind, detail = classify(500, {}, {"code": "internal_error"}, (200,), None)
        assert (kind, detail) == ("error", "unexpected 500 (internal_error)")


class TestOutcomes:
    def test_503s_are_expected_only_while_postgres_is_down_or_recovering(self) -> None:
        plan = plan_with_postgres_outage()
        samples = [
            sample(50, "unavailable", 503),  # before the outage
            sample(99.9, "unavailable", 503, seconds=0.2),  # in flight when it stopped
            sample(100, "unavailable", 503),
            sample(114, "unavailable", 503),
            sample(115 + plan.recovery_grace, "unavailable", 503),  # last instant of grace
            sample(116 + plan.recovery_grace, "unavailable", 503),  # after it
            sample(120, "rate_limited", 429),
            sample(130, "ok"),
            Sample(140, "list_tasks", 0, 1.0, "error", "connection error: reset"),
        ]
        outcomes = analysis.outcomes(samples, plan)
        assert outcomes.total == 9
        assert outcomes.ok == 1
        assert outcomes.rate_limited == 1
        assert outcomes.unavailable_during_faults == 4
        assert outcomes.errors == Counter(
            {"503 outside a PostgreSQL outage": 2, "connection error: reset": 1}
        )

    def test_503s_are_errors_during_the_other_faults(self) -> None:
        plan = Plan(600, (Fault(REDIS_STOP, 100, 30, started=100, down_at=100, up_at=130),))
        outcomes = analysis.outcomes([sample(110, "unavailable", 503)], plan)
        assert outcomes.error_count == 1


class TestRecovery:
    def test_recovery_is_measured_from_the_restart_to_the_last_503(self) -> None:
        plan = plan_with_postgres_outage()
        samples = [
            sample(99, "ok"),
            sample(99.95, "unavailable", 503, seconds=0.1),  # in flight at the stop
            sample(101, "unavailable", 503, seconds=0.002),
            sample(110, "unavailable", 503, seconds=0.004),
            sample(117.5, "unavailable", 503),
            sample(118, "ok"),
        ]
        recovery = analysis.recovery(samples, plan.faults[0], plan)
        assert recovery.unavailable == 4
        assert recovery.first_unavailable == 99.95
        assert recovery.recovered_after == pytest.approx(2.5)
        assert recovery.p99_during == 0.1  # the slowest of the four sent while it was down

    def test_no_503_after_the_restart_is_an_immediate_recovery(self) -> None:
        plan = plan_with_postgres_outage()
        recovery = analysis.recovery([sample(105, "unavailable", 503)], plan.faults[0], plan)
        assert recovery.recovered_after == 0.0

    def test_a_worker_kill_counts_only_its_own_span(self) -> None:
        fault = Fault(WORKER_KILL, 50, 0, started=50, down_at=50, up_at=58)
        plan = Plan(600, (fault,))
        samples = [sample(55, "error", 500), sample(70, "error", 500)]
        assert analysis.recovery(samples, fault, plan).errors == 1


def memory(pid: int, values: list[int], *, start: float = 0, step: float = 5) -> list[MemorySample]:
    """RSS samples of one process, ``step`` seconds apart."""
    return [
        MemorySample(start + index * step, "gunicorn-a worker", pid, value)
        for index, value in enumerate(values)
    ]


class TestMemoryGrowth:
    def test_transient_login_spikes_do_not_count_as_growth(self) -> None:
        # 120 samples over 600 s at 100 MiB, with argon2's +64 MiB caught now and then.
        values = [100_000] * 120
        for index in (110, 111, 112, 116, 117, 119):  # none caught early, six of the last 12
            values[index] = 165_000
        [row] = analysis.memory_growth(memory(1, values), Plan(600))
        assert row.growth == 0.0
        assert row.mean_growth is not None
        assert row.mean_growth > analysis.MEMORY_GROWTH_LIMIT  # the mean would have failed it
        assert row.flat
        assert row.peak_kib == 165_000

    def test_steady_growth_is_caught(self) -> None:
        values = [100_000 + 500 * index for index in range(120)]  # +6 MiB a minute
        [row] = analysis.memory_growth(memory(1, values), Plan(600))
        assert row.growth is not None
        assert row.growth > analysis.MEMORY_GROWTH_LIMIT
        assert not row.flat

    def test_a_replacement_process_gets_its_own_warm_up(self) -> None:
        # Started at 150 s, grows while warming up (150-210 s), then flat.
        values = [80_000 + 2_000 * min(index, 12) for index in range(90)]
        [row] = analysis.memory_growth(memory(2, values, start=150), Plan(600))
        assert row.early is not None
        assert row.early.floor == 104_000
        assert row.growth == 0.0

    def test_only_the_load_is_judged_not_the_drain_after_it(self) -> None:
        values = [100_000] * 120 + [200_000] * 20  # 100 s of drain after the 600 s
        [row] = analysis.memory_growth(memory(1, values), Plan(600))
        assert row.growth == 0.0
        assert row.last_seen == 595

    def test_a_process_that_lived_too_briefly_is_not_judged(self) -> None:
        [row] = analysis.memory_growth(memory(3, [100_000] * 30), Plan(600))  # 150 s
        assert row.growth is None
        assert row.flat


def test_percentile_is_nearest_rank() -> None:
    values = [float(value) for value in range(1, 101)]
    assert analysis.percentile(values, 0.99) == 99.0
    assert analysis.percentile(values, 0.5) == 50.0
    assert analysis.percentile([], 0.99) == 0.0


def test_buckets_leave_429s_out_of_the_latencies() -> None:
    samples = [sample(1, "ok", seconds=0.1), sample(2, "rate_limited", 429, seconds=5.0)]
    samples.append(sample(12, "error", 500, seconds=0.3))
    first, second = analysis.buckets(samples, 10, 20)
    assert (first.requests, first.p99, first.rate_limited) == (2, 0.1, 1)
    assert (second.start, second.errors, second.worst) == (10, 1, 0.3)


def ledger(**changes: object) -> Ledger:
    """A settled ledger: two events of owner 1 delivered once each, owner 2 has no webhook."""
    created = datetime(2030, 1, 1, tzinfo=UTC)
    values: dict[str, object] = {
        "owners": {1},
        "events": {
            "e1": ("task.created", created, 1),
            "e2": ("task.deleted", created, 1),
            "e3": ("task.created", created, 2),
        },
        "deliveries": {"d1": ("e1", "succeeded", 1), "d2": ("e2", "succeeded", 2)},
        "misrouted": [],
        "jobs": Counter({"succeeded": 3}),
        "job_max_attempts": 1,
        "outbox_unpublished": 0,
        "outbox_undispatched": 0,
        "received": 3,
        "received_ids": {"d1", "d2"},
    }
    values.update(changes)
    return Ledger(**values)  # type: ignore[arg-type]


class TestLedger:
    def test_every_event_of_a_subscriber_delivered_is_settled(self) -> None:
        settled = ledger()
        assert settled.settled
        assert set(settled.expected) == {"e1", "e2"}
        assert settled.duplicates == 1

    def test_an_event_without_a_delivery_is_not_settled(self) -> None:
        lost = ledger(deliveries={"d1": ("e1", "succeeded", 1)}, received_ids={"d1"})
        assert lost.without_delivery == {"e2"}
        assert not lost.settled

    def test_a_delivery_not_received_or_still_pending_is_not_settled(self) -> None:
        assert not ledger(received_ids={"d1"}).settled
        pending = {"d1": ("e1", "succeeded", 1), "d2": ("e2", "pending", 3)}
        assert not ledger(deliveries=pending).settled

    def test_an_unfinished_job_or_undispatched_event_is_not_settled(self) -> None:
        assert not ledger(jobs=Counter({"succeeded": 2, "running": 1})).settled
        assert not ledger(outbox_undispatched=1).settled


def test_the_load_balancer_gets_both_replicas_with_the_compose_settings(tmp_path: Path) -> None:
    conf = render_two_replicas(
        NGINX_CONF.read_text(), upstream_ports=(8001, 8002), port=9000, prefix=tmp_path
    )
    assert "server 127.0.0.1:8001 max_fails=3 fail_timeout=10s;" in conf
    assert "server 127.0.0.1:8002 max_fails=3 fail_timeout=10s;" in conf
    assert "server api-" not in conf
    assert "listen 127.0.0.1:9000 default_server;" in conf


def test_postgres_restarts_with_the_options_it_first_had(tmp_path: Path) -> None:
    (tmp_path / "postmaster.opts").write_text(
        '/usr/lib/postgresql/15/bin/postgres "-D" "/tmp/pg data/data" "-p" "5433" '
        '"-c" "listen_addresses=127.0.0.1"\n'
    )
    assert postmaster_options(tmp_path) == "-p 5433 -c listen_addresses=127.0.0.1"
