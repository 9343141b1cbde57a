"""Run a soak and write its report:

    .venv/bin/python -m tests.soak                 # SOAK_SECONDS or 600 s, with faults
    .venv/bin/python -m tests.soak --seconds 60    # the quick mode (make soak-quick)

Exits 1 when a check fails (the report says which), 2 when the stack cannot start.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.soak.faults import FaultInjector, Plan
from tests.soak.ledger import drain
from tests.soak.monitor import Monitor
from tests.soak.report import SoakResult, render, verdict
from tests.soak.stack import soak_settings, start_stack
from tests.soak.traffic import Client, Recorder
from tests.support.live import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results"
# The committed report is the full run's; a quick run does not overwrite it.
FULL_REPORT, QUICK_REPORT = RESULTS / "soak-latest.md", RESULTS / "soak-quick.md"
FULL_RUN_SECONDS = 300  # from this long on, a run is reported as a full one


def arguments(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (defaults from SOAK_SECONDS)."""
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS") or 600)
    )
    parser.add_argument(
        "--clients", type=int, default=8, help="simulated users (half with a webhook)"
    )
    parser.add_argument("--rate", type=float, default=4.0, help="requests per second per user")
    parser.add_argument(
        "--greedy-rate", type=float, default=12.0, help="the over-budget user's rate"
    )
    parser.add_argument("--no-faults", action="store_true", help="load only")
    parser.add_argument(
        "--report", type=Path, help=f"default {FULL_REPORT.name}, or {QUICK_REPORT.name} if quick"
    )
    parser.add_argument("--label", default="", help="the report's title")
    return parser.parse_args(argv)


def commit() -> str:
    """The checked-out commit (and whether the tree had changes)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    return git("rev-parse", "--short", "HEAD") or "unknown"


def save_raw(result: SoakResult, path: Path) -> None:
    """Every sample, for a closer look than the report's (next to the logs)."""
    data = {
        "requests": [dataclasses.astuple(sample) for sample in result.samples],
        "memory": [dataclasses.astuple(sample) for sample in result.memory],
        "load": result.load,
        "faults": [dataclasses.asdict(fault) for fault in result.plan.faults],
        "first_seen": result.first_seen,
        "event_times": result.event_times,
        "deliveries": (  # delivery id -> (event id, state, attempts)
            result.ledger.deliveries if result.ledger is not None else {}
        ),
    }
    path.write_text(json.dumps(data))


def main(argv: list[str] | None = None) -> int:
    """Start the stack, run the load and the faults, drain, report; stop everything."""
    args = arguments(argv)
    plan = Plan.scaled(args.seconds, faults=not args.no_faults)
    label = args.label or (
        f"{args.seconds / 60:.0f}-minute run"
        if args.seconds >= FULL_RUN_SECONDS
        else f"quick run ({args.seconds:.0f} s)"
    )
    memory_interval = plan.window / 12  # a dozen samples in each window compared
    print(f"soak: starting the stack ({label})", flush=True)
    try:
        stack = start_stack()
    except Exception as exc:
        print(f"soak: the stack did not start: {exc}", file=sys.stderr)
        return 2
    print(f"soak: logs under {stack.workdir}", flush=True)
    try:
        stop_load, stop_monitor = threading.Event(), threading.Event()
        recorder = Recorder()
        job_every = min(60.0, max(15.0, args.seconds / 10))
        clients = [
            Client(
                number,
                port=stack.port,
                recorder=recorder,
                stop=stop_load,
                rate=args.rate,
                webhook_url=stack.receiver.url if number % 2 == 0 else None,
                job_every=job_every,
            )
            for number in range(args.clients)
        ]
        greedy = Client(
            args.clients,
            port=stack.port,
            recorder=recorder,
            stop=stop_load,
            rate=args.greedy_rate,
            greedy=True,
        )
        with ThreadPoolExecutor(max_workers=4) as pool:  # argon2 at production cost: seconds
            list(pool.map(Client.set_up, [*clients, greedy]))
        owners = {client.user_id for client in clients if client.webhook_url}

        recorder.started = time.monotonic()
        wall_start = time.time()
        monitor = Monitor(stack, recorder, memory_interval, stop_monitor).start()
        injector = FaultInjector(stack, recorder, monitor, plan, stop_load).start()
        for client in [*clients, greedy]:
            client.start()
        print(f"soak: load running for {args.seconds:.0f} s", flush=True)
        try:
            stop_load.wait(args.seconds)
        except KeyboardInterrupt:
            print("soak: interrupted; reporting what was recorded", flush=True)
        stop_load.set()
        for client in [*clients, greedy]:
            client.join(timeout=90)
        injector.join(timeout=120)

        drain_timeout = max(180.0, args.seconds / 2)
        print(f"soak: load done, draining (at most {drain_timeout:.0f} s)", flush=True)
        ledger, drain_seconds = drain(stack, owners, drain_timeout)
        stop_monitor.set()
        monitor.join()

        event_times = {}
        if ledger is not None:
            event_times = {
                key: created.timestamp() - wall_start
                for key, (_, created, _) in ledger.events.items()
            }
        result = SoakResult(
            label=label,
            plan=plan,
            clients=args.clients + 1,
            webhook_users=len(owners),
            samples=list(recorder.samples),
            memory=list(monitor.memory),
            load=list(monitor.load),
            deaths=list(monitor.deaths),
            ledger=ledger,
            drain_seconds=drain_seconds,
            event_times=event_times,
            first_seen=dict(monitor.first_seen),
            setup={
                "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "commit": commit(),
                "CPUs": str(os.cpu_count()),
                "users": f"{args.clients} at {args.rate:g} requests/s each (paced, jittered), "
                f"1 greedy at {args.greedy_rate:g}/s; logins every 30 s, an export job every "
                f"{job_every:.0f} s per user",
                "memory interval": f"{memory_interval:g} s",
                "settings (every process)": ", ".join(
                    f"{key}={value}" for key, value in soak_settings().items()
                )
                + ", GUNICORN_MAX_REQUESTS=0 (no recycling, so a leak would show)",
                "logs": str(stack.workdir),
            },
            fault_errors=list(injector.errors),
        )
        report = args.report or (FULL_REPORT if args.seconds >= FULL_RUN_SECONDS else QUICK_REPORT)
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(render(result))
        save_raw(result, stack.workdir / "soak-data.json")
        print(f"soak: report written to {report}", flush=True)
        checks = verdict(result)
        for name, ok, text in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {name}: {text}")
        return 0 if all(ok for _, ok, _ in checks) else 1
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
