"""Running wrk: warm-up, measured runs, and the CPU each process group used meanwhile.

CPU is read from ``/proc/<pid>/stat`` before and after each measured run: utime + stime of
each process, plus cutime + cstime of a parent (the CPU of children it reaped meanwhile, such
as gunicorn workers recycled by ``max_requests``). wrk's own CPU comes from ``wait4``.
"""

# ruff: noqa: S603, S607 - runs wrk (and apt-get to install it)
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "lua"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def ensure_wrk() -> str:
    """Path of wrk: installed from Debian's package when missing and allowed, else exit."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False, capture_output=True
        )
        found = shutil.which("wrk")
        if found:
            return found
    sys.exit("wrk is not installed: install it (Debian/Ubuntu: `sudo apt-get install wrk`)")


# --- CPU of process groups ---------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_ticks(pid: int, *, with_reaped_children: bool = False) -> int:
    """CPU ticks of ``pid`` (and of its children already reaped, when asked)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0
    # Fields after the command: state(0) ... utime(11) stime(12) cutime(13) cstime(14).
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    try:
        return [
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]
    except OSError:
        return []


def tree_ticks(pid: int) -> int:
    """CPU ticks of a parent (with its reaped children) and of its live children."""
    return process_ticks(pid, with_reaped_children=True) + sum(
        process_ticks(child) for child in children_of(pid)
    )


def cmdline(pid: int) -> str:
    """The command line of ``pid`` ('' when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def postgres_processes(postmaster: int, database: str) -> list[int]:
    """The PostgreSQL processes serving the benchmark: the backends connected to its database
    and the server's background processes (WAL writer, checkpointer...), not the backends of
    other databases on a shared server."""
    pids = []
    for child in children_of(postmaster):
        line = cmdline(child)
        is_backend = "(" in line  # "postgres: user db 127.0.0.1(port) idle"
        if not is_backend or f" {database} " in line:
            pids.append(child)
    return pids


@dataclass
class CpuGroups:
    """The CPU ticks of each group measured next to wrk.

    ``trees`` are parents whose reaped children count too (gunicorn: a worker recycled by
    ``max_requests`` keeps counting through the master's cutime). ``members`` lists the
    processes of a group that has no such parent of its own (PostgreSQL's backends of one
    database, Redis); a sampler thread follows them during the run, so a backend that exits
    meanwhile (its worker recycled) counts up to its last sample instead of vanishing.
    """

    trees: dict[str, int] = field(default_factory=dict)
    members: dict[str, Callable[[], list[int]]] = field(default_factory=dict)
    interval: float = 0.2
    _first: dict[str, dict[int, int]] = field(default_factory=dict)
    _last: dict[str, dict[int, int]] = field(default_factory=dict)
    _tree_start: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample_members(self, first: bool = False) -> None:
        for name, list_pids in self.members.items():
            for pid in list_pids():
                ticks = process_ticks(pid)
                if ticks == 0 and pid not in self._last[name]:
                    continue
                if first:
                    self._first[name].setdefault(pid, ticks)
                else:
                    # a process born during the run counts from zero
                    self._first[name].setdefault(pid, 0)
                self._last[name][pid] = max(ticks, self._last[name].get(pid, 0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample_members()

    def start(self) -> None:
        """Take the first sample and follow the members until ``stop``."""
        self._first = {name: {} for name in self.members}
        self._last = {name: {} for name in self.members}
        self._tree_start = {name: tree_ticks(pid) for name, pid in self.trees.items()}
        self._sample_members(first=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, int]:
        """Ticks used by each group since ``start``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample_members()
        used = {name: tree_ticks(pid) - self._tree_start[name] for name, pid in self.trees.items()}
        for name in self.members:
            used[name] = sum(
                last - self._first[name].get(pid, 0) for pid, last in self._last[name].items()
            )
        return used


# --- wrk ---------------------------------------------------------------------------------------


@dataclass
class Run:
    """One measured wrk run."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int
    cpu_cores: dict[str, float]
    load_average: float = 0.0  # the machine's 1-minute load average right after the run


@dataclass
class Scenario:
    """The three runs of a scenario and their median."""

    name: str
    runs: list[Run]
    connections: int = 32

    @property
    def median(self) -> Run:
        """The run with the median requests/s (its latencies and CPU are reported)."""
        ordered = sorted(self.runs, key=lambda run: run.requests_per_second)
        return ordered[len(ordered) // 2]

    @property
    def rps_min(self) -> float:
        """Lowest requests/s of the runs."""
        return min(run.requests_per_second for run in self.runs)

    @property
    def rps_max(self) -> float:
        """Highest requests/s of the runs."""
        return max(run.requests_per_second for run in self.runs)

    @property
    def errors(self) -> int:
        """Errors of every run added up (socket errors, timeouts, non-2xx/3xx)."""
        return sum(run.errors for run in self.runs)

    @property
    def p99_spread(self) -> tuple[float, float]:
        """Lowest and highest p99 of the runs."""
        values = [run.p99_ms for run in self.runs]
        return min(values), max(values)

    @property
    def p50_spread(self) -> tuple[float, float]:
        """Lowest and highest p50 of the runs."""
        values = [run.p50_ms for run in self.runs]
        return min(values), max(values)


@dataclass
class LoadSettings:
    """How long and how hard wrk pushes."""

    connections: int = 32
    threads: int = 2
    warmup_seconds: int = 3
    run_seconds: int = 10
    runs: int = 3
    timeout_seconds: int = 10


def wrk_once(
    wrk: str,
    url: str,
    script: str,
    seconds: int,
    settings: LoadSettings,
    env: dict[str, str],
    cpu: CpuGroups | None = None,
) -> Run:
    """One bounded wrk run; with ``cpu``, the cores each group used during it."""
    command = [
        wrk,
        f"-t{settings.threads}",
        f"-c{settings.connections}",
        f"-d{seconds}s",
        f"--timeout={settings.timeout_seconds}s",
        "-s",
        script,
        url,
    ]
    if cpu:
        cpu.start()
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=LUA_DIR,
        env={**os.environ, **env, "BENCH_WRK_THREADS": str(settings.threads)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - started
    used = cpu.stop() if cpu else {}
    line = next((x for x in output.splitlines() if x.startswith("BENCH_JSON ")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{output}")
    figures = json.loads(line.removeprefix("BENCH_JSON "))
    non_2xx = 0
    for text in output.splitlines():
        if "Non-2xx or 3xx responses:" in text:
            non_2xx = int(text.split(":")[1])
    errors = sum(figures[key] for key in ("connect", "read", "write", "timeout")) + non_2xx
    cores = {name: ticks / CLOCK_TICKS / elapsed for name, ticks in used.items()}
    cores["wrk"] = (usage.ru_utime + usage.ru_stime) / elapsed
    return Run(
        requests_per_second=figures["requests"] / (figures["duration_us"] / 1e6),
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        errors=errors,
        non_2xx=non_2xx,
        cpu_cores=cores,
        load_average=float(Path("/proc/loadavg").read_text().split()[0]),
    )


def measure(
    name: str,
    wrk: str,
    url: str,
    script: str,
    settings: LoadSettings,
    env: dict[str, str],
    cpu: CpuGroups,
    log: Callable[[str], None] = print,
) -> Scenario:
    """Warm up, then ``settings.runs`` measured runs, each after its own warm-up."""
    runs = []
    for number in range(settings.runs):
        wrk_once(wrk, url, script, settings.warmup_seconds, settings, env)
        run = wrk_once(wrk, url, script, settings.run_seconds, settings, env, cpu)
        runs.append(run)
        log(
            f"  {name} run {number + 1}: {run.requests_per_second:,.0f} req/s, "
            f"p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms, errors {run.errors}, cpu "
            + ", ".join(f"{key} {value:.2f}" for key, value in run.cpu_cores.items())
        )
    return Scenario(name, runs, settings.connections)


def median(values: list[float]) -> float:
    """The median of ``values`` (0 when empty)."""
    return statistics.median(values) if values else 0.0
