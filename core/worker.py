"""Running the queue: an embedded Huey consumer (threads), its heartbeat and the sweeper.

`Worker` runs inside another program (the GUI, `mailroom serve`): Huey's consumer
normally installs SIGINT/SIGTERM/SIGHUP handlers, which would take over the host
program's; `EmbeddedConsumer` turns that off. Idle workers poll the queue every
0.05–0.25 s instead of Huey's default back-off of up to 10 s.

`run_blocking` is the standalone `mailroom worker`: it owns the process, so it
handles SIGINT/SIGTERM itself and stops cleanly.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any

from huey import Huey
from huey.consumer import Consumer, Scheduler
from huey.consumer import Worker as HueyWorker
from sqlalchemy import delete
from sqlmodel import col

from core.db import Database, now_ts
from core.models import WorkerBeat
from core.settings import Settings

log = logging.getLogger(__name__)


class _Scheduler(Scheduler):  # type: ignore[misc]
    """Huey's scheduler, allowed to look for due retries more often than once a second."""

    interval_seconds = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.interval = self.interval_seconds


class _Worker(HueyWorker):  # type: ignore[misc]
    """Huey's worker, woken at once when this process enqueues (instead of polling only)."""

    wake: threading.Event = threading.Event()
    delay: float
    default_delay: float
    max_delay: float
    backoff: float

    def sleep(self) -> None:
        delay = min(self.delay, self.max_delay)
        # Jitter keeps idle threads from polling in step (they start together), so that
        # some thread looks at the queue every max_delay / threads seconds or so. The
        # wait ends early when this process enqueues, and when the consumer stops (it
        # sets the event too; a stopping consumer's event stays set).
        if self.wake.wait(delay * random.uniform(0.5, 1.0)):
            if not self.stop_flag.is_set():
                self.wake.clear()
            self.delay = self.default_delay
            return
        self.delay = delay * self.backoff


class EmbeddedConsumer(Consumer):  # type: ignore[misc]
    """A Huey consumer that leaves the host program's signal handlers alone.

    `wake`, when given, is an Event that the host sets after enqueueing: idle worker
    threads then look at the queue at once instead of at their next poll.
    """

    def __init__(
        self,
        *args: Any,
        scheduler_seconds: float = 1.0,
        wake: threading.Event | None = None,
        **kwargs: Any,
    ) -> None:
        self.scheduler_class = type(
            "Scheduler", (_Scheduler,), {"interval_seconds": max(0.05, scheduler_seconds)}
        )
        self.wake = wake or threading.Event()
        self.worker_class = type("Worker", (_Worker,), {"wake": self.wake})
        super().__init__(*args, **kwargs)

    def _set_signal_handlers(self) -> None:
        """Deliberately nothing: the host program owns its signals."""

    def stop(self, graceful: bool = False) -> None:
        """Huey's stop, also waking the idle worker threads so that they see it at once."""
        self.stop_flag.set()
        self.wake.set()
        super().stop(graceful=graceful)


# Worker threads spend most of their time waiting for the SMTP server's replies (the
# catcher answers DATA only once the message is committed), so many more than the cores
# keep it busy and let it commit several messages at once. On 2 cores end to end
# (3,000 sign-ups, bench/throughput.py's scenario), with the outbox writes grouped:
# 16 threads 516-536 emails/s, 32 threads 531-588, 64 threads 473-490 (the threads'
# own overhead wins). Each thread holds at most one pooled SMTP connection: a relay
# that limits concurrent connections wants `--workers` lower.
DEFAULT_WORKERS = 32

# The idle poll interval is per thread: threads back off to settings'
# worker_max_poll_seconds times (threads / POLL_THREADS), so that an idle worker reads
# the queue about as often (and answers a new task about as fast) whatever its size.
POLL_THREADS = 4


class Worker:
    """An embedded queue consumer plus its heartbeat and periodic sweeper. Stop it with stop()."""

    def __init__(
        self,
        huey: Huey,
        db: Database,
        settings: Settings,
        sweep: Callable[[], int],
        workers: int = DEFAULT_WORKERS,
        on_stop: Callable[[Worker], None] | None = None,
        engine_id: str = "",
        wake: threading.Event | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.engine_id = engine_id
        self.workers = max(1, workers)
        self._db = db
        self._settings = settings
        self._sweep = sweep
        self._on_stop = on_stop
        self._stop = threading.Event()
        self._stopped = False
        self._lock = threading.Lock()
        self.consumer = EmbeddedConsumer(
            huey,
            workers=self.workers,
            worker_type="thread",
            periodic=False,
            initial_delay=settings.worker_poll_seconds,
            backoff=1.5,
            max_delay=settings.worker_max_poll_seconds * max(1.0, self.workers / POLL_THREADS),
            scheduler_interval=1,
            scheduler_seconds=settings.scheduler_interval_seconds,
            wake=wake,
            check_worker_health=False,
            shutdown_timeout=settings.smtp_timeout + 5.0,
        )
        # Two threads: a slow sweep (or a long lock wait) must never delay the heartbeat,
        # or other processes would take this worker for dead and release its rows.
        self._threads = [
            threading.Thread(target=self._sweep_loop, name="mailroom-sweeper", daemon=True),
            threading.Thread(target=self._beat_loop, name="mailroom-heartbeat", daemon=True),
        ]

    def start(self) -> Worker:
        """Start the consumer threads, the heartbeat and the sweeper (which runs once at once)."""
        self._beat(first=True)
        self.consumer.start()
        for thread in self._threads:
            thread.start()
        return self

    @property
    def alive(self) -> bool:
        """True until stop() has been called."""
        return not self._stop.is_set()

    def stop(self) -> None:
        """Stop taking tasks, let running ones finish, stop the sweeper, remove the heartbeat."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._stop.set()
        self.consumer.stop(graceful=True)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=self._settings.smtp_timeout + 5.0)
        try:
            with self._db.write() as s:
                s.execute(delete(WorkerBeat).where(col(WorkerBeat.id) == self.id))
        except Exception:
            log.exception("could not remove the worker heartbeat")
        if self._on_stop is not None:
            self._on_stop(self)

    def _beat(self, first: bool = False) -> None:
        now = now_ts()

        def write() -> None:
            with self._db.write() as s:
                row = s.get(WorkerBeat, self.id)
                if row is None:
                    row = WorkerBeat(
                        id=self.id,
                        engine_id=self.engine_id,
                        pid=os.getpid(),
                        hostname=socket.gethostname(),
                        threads=self.workers,
                        started_at=now,
                        beat_at=now,
                    )
                else:
                    row.beat_at = now
                s.add(row)
                if first:
                    # Forget workers that have been silent for a long time.
                    s.execute(
                        delete(WorkerBeat).where(
                            col(WorkerBeat.beat_at) < now - 60 * self._settings.heartbeat_seconds
                        )
                    )

        self._db.run_locked_retry(write, timeout=10.0)

    def _sweep_loop(self) -> None:
        while not self._stop.is_set():
            try:
                n = self._sweep()
                if n:
                    log.info("sweeper re-enqueued %d outbox rows", n)
            except Exception:
                log.exception("sweep failed; will try again")
            self._stop.wait(self._settings.sweep_interval_seconds)

    def _beat_loop(self) -> None:
        while not self._stop.wait(self._settings.heartbeat_seconds):
            try:
                self._beat()
            except Exception:
                log.exception("heartbeat failed; will try again")


def run_blocking(start: Callable[[], Worker], stop_event: threading.Event | None = None) -> None:
    """Run a worker until SIGINT/SIGTERM (or stop_event), then stop it cleanly."""
    event = stop_event or threading.Event()
    previous: dict[int, Any] = {}

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        event.set()

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[int(sig)] = signal.signal(sig, handler)
    worker = start()
    try:
        while not event.wait(0.2):
            pass
    finally:
        worker.stop()
        for signum, old in previous.items():
            signal.signal(signum, old)
