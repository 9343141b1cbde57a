"""The faults injected while the load runs, on a schedule scaled to the soak's length."""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass, field

from tests.soak.monitor import Monitor
from tests.soak.stack import SoakStack
from tests.soak.traffic import Recorder

WORKER_KILL = "worker_kill"
POSTGRES_RESTART = "postgres_restart"
REDIS_STOP = "redis_stop"


@dataclass
class Fault:
    """One fault: when it was planned, and what happened (soak seconds)."""

    kind: str
    at: float
    down_for: float
    started: float | None = None  # the injection began
    down_at: float | None = None  # the service is down (process gone, port closed)
    up_at: float | None = None  # the service answers again (new worker ready, server started)
    failure: str = ""  # the injection itself failed (a harness or environment problem)


@dataclass(frozen=True)
class Plan:
    """How long the soak runs, its warm-up, the memory windows and the faults."""

    seconds: float
    faults: tuple[Fault, ...] = ()

    @property
    def warmup(self) -> float:
        """Memory is judged after this (a tenth of the run: the first minute of ten)."""
        return self.seconds / 10

    @property
    def window(self) -> float:
        """Length of the first and last memory windows compared."""
        return self.seconds / 10

    @property
    def recovery_grace(self) -> float:
        """How long after PostgreSQL is back a 503 still counts as the fault's."""
        return min(30.0, max(10.0, self.seconds / 20))

    @classmethod
    def scaled(cls, seconds: float, *, faults: bool = True) -> Plan:
        """The faults at a quarter, ~45% and ~65% of the run; the last tenth is left quiet."""
        if not faults:
            return cls(seconds)
        return cls(
            seconds,
            (
                Fault(WORKER_KILL, seconds * 0.25, 0.0),
                Fault(POSTGRES_RESTART, seconds * 0.45, min(15.0, max(5.0, seconds / 40))),
                Fault(REDIS_STOP, seconds * 0.65, min(30.0, max(10.0, seconds / 20))),
            ),
        )


@dataclass
class FaultInjector:
    """Runs the plan's faults on its own thread."""

    stack: SoakStack
    recorder: Recorder
    monitor: Monitor
    plan: Plan
    stop: threading.Event
    thread: threading.Thread | None = None
    errors: list[str] = field(default_factory=list)

    def start(self) -> FaultInjector:
        """Begin waiting for the first fault."""
        self.thread = threading.Thread(target=self.run, name="faults", daemon=True)
        self.thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        """Wait until every fault is over (the last service restarted)."""
        if self.thread is not None:
            self.thread.join(timeout)

    def run(self) -> None:
        """Each fault at its time; a failed injection is recorded and the rest go on."""
        for fault in self.plan.faults:
            if self.stop.wait(max(0.0, fault.at - self.recorder.now())):
                return
            try:
                self.inject(fault)
            except Exception as exc:  # reported, not raised: the soak and its report go on
                fault.failure = f"{type(exc).__name__}: {exc}"
                self.errors.append(traceback.format_exc())

    def inject(self, fault: Fault) -> None:
        """Break one dependency, wait ``down_for``, bring it back; timestamps on ``fault``."""
        fault.started = self.recorder.now()
        if fault.kind == WORKER_KILL:
            with self.monitor.control:
                assert self.stack.worker is not None
                self.stack.worker.kill()  # SIGKILL to the process group: main and children
                fault.down_at = self.recorder.now()
                self.stack.start_worker()
                fault.up_at = self.recorder.now()
        elif fault.kind == POSTGRES_RESTART:
            self.stack.stop_postgres()
            fault.down_at = self.recorder.now()
            self.stop.wait(fault.down_for)
            self.stack.start_postgres_again()
            fault.up_at = self.recorder.now()
        elif fault.kind == REDIS_STOP:
            self.stack.stop_redis()
            fault.down_at = self.recorder.now()
            self.stop.wait(fault.down_for)
            self.stack.start_redis_again()
            fault.up_at = self.recorder.now()
        else:
            raise ValueError(f"unknown fault {fault.kind!r}")
