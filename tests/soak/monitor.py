"""What the soak watches while the load runs: every process's memory, the machine's load, when
each webhook first reached the receiver, and any process that died.

Celery worker and beat are supervised as compose or Kubernetes would (a dead one is replaced,
and the replacement is reported); a dead nginx or gunicorn is reported and not replaced.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.soak.stack import SoakStack
from tests.soak.traffic import Recorder


@dataclass(frozen=True)
class MemorySample:
    """The resident set of one process at one moment."""

    at: float
    role: str
    pid: int
    rss_kib: int


@dataclass(frozen=True)
class Death:
    """A process that exited on its own during the soak."""

    at: float
    role: str
    exit_code: int | None
    replaced: bool
    log_tail: str


def rss_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` in KiB (None once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


@dataclass
class Monitor:
    """Samples on its own thread until ``stop`` is set."""

    stack: SoakStack
    recorder: Recorder
    interval: float
    stop: threading.Event
    # Held by the fault injector while it kills and replaces a process on purpose.
    control: threading.Lock = field(default_factory=threading.Lock)
    memory: list[MemorySample] = field(default_factory=list)
    load: list[tuple[float, float]] = field(default_factory=list)
    first_seen: dict[str, float] = field(default_factory=dict)
    deaths: list[Death] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> Monitor:
        """Begin sampling."""
        self.thread = threading.Thread(target=self.run, name="monitor", daemon=True)
        self.thread.start()
        return self

    def join(self) -> None:
        """Wait for the thread to notice ``stop``."""
        if self.thread is not None:
            self.thread.join(timeout=30)

    def run(self) -> None:
        """Webhook arrivals and supervision every second (or ``interval``), memory every
        ``interval``."""
        next_memory = 0.0
        while not self.stop.is_set():
            now = self.recorder.now()
            self.note_arrivals(now)
            self.supervise(now)
            if now >= next_memory:
                next_memory = now + self.interval
                self.sample_memory(now)
            self.stop.wait(min(1.0, self.interval))
        self.note_arrivals(self.recorder.now())

    def note_arrivals(self, now: float) -> None:
        """The first time each webhook-id was seen (within a second)."""
        for webhook_id in self.stack.receiver.ids():
            self.first_seen.setdefault(webhook_id, now)

    def sample_memory(self, now: float) -> None:
        """RSS of every followed process, and the 1-minute load average."""
        for role, pids in self.stack.processes().items():
            for pid in pids:
                rss = rss_kib(pid)
                if rss is not None:
                    self.memory.append(MemorySample(now, role, pid, rss))
        self.load.append((now, os.getloadavg()[0]))

    def supervise(self, now: float) -> None:
        """Replace a worker or beat that exited; report any process that exited."""
        if not self.control.acquire(blocking=False):
            return  # a fault is killing and replacing something on purpose
        try:
            for role in ("worker", "beat"):
                process = getattr(self.stack, role)
                if process is None or process.popen.poll() is None:
                    continue
                tail = process.log()[-2000:]
                code = process.popen.returncode
                if role == "worker":
                    self.stack.start_worker()
                else:
                    self.stack.start_beat()
                self.deaths.append(Death(now, f"celery {role}", code, True, tail))
            watched = [("nginx", self.stack.nginx.process)] if self.stack.nginx else []
            watched += [
                (f"gunicorn-{letter}", server.process)
                for letter, server in zip("ab", self.stack.gunicorns, strict=False)
            ]
            for role, process in watched:
                code = process.popen.poll()
                if code is not None and not any(death.role == role for death in self.deaths):
                    self.deaths.append(Death(now, role, code, False, process.log()[-2000:]))
        finally:
            self.control.release()
