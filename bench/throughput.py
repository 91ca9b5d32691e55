"""Benchmark 2: delivery throughput and idle sign-up-to-inbox time.

The product runs as ``mailroom serve``, exactly as shipped (catcher and HTTP port in
its process, the queue worker with its default threads in serve's child process);
sign-ups come from this benchmark's process through an Engine on the same data folder,
as a web application beside Mailroom would make them.

- **End to end**: sign up N users as fast as the application can, and time from the
  first sign-up until the last activation email is in the catcher's store. The
  application signs up from CALLERS threads at once (a web application answers several
  requests at a time: one caller spends most of each sign-up waiting for the database,
  not computing); the same with one caller is reported too. The queue depth and the
  number captured are sampled every 100 ms (for the plot).
- **Drain**: sign up N users while nothing runs, then start ``mailroom serve`` and time
  how fast the worker empties the queue into the catcher (first to last capture): the
  delivery pipeline's own capacity, without sign-ups competing for the CPU.
- **Idle**: one sign-up at a time with pauses of 0.3-1 s (the worker idle in between);
  the time from the start of ``register`` to the catcher's receipt of that email.

Passwords are hashed with argon2id at its minimum cost here (t=1, m=8 KiB, through core's
argon2 settings), so that sign-ups measure the queue, not the hash: benchmark 1 reports
hashing, and on 2 cores every millisecond a hash takes is taken from delivery.

Targets (issue 6): >= 500 emails/s end to end on 2 cores; idle p50 < 100 ms, p99 < 300 ms.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    LOOPBACK,
    BenchConfig,
    child_env,
    free_port,
    print_table,
    spread,
    stop_process,
    summarize,
    wait_for_port,
    wait_until,
    write_json,
)
from core.worker import DEFAULT_WORKERS

TARGET_EMAILS_PER_S = 500.0
# Threads of the application that sign users up at the same time, end to end.
CALLERS = 4
TARGET_IDLE_P50_MS = 100.0
TARGET_IDLE_P99_MS = 300.0
CHEAP_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_cost": 8, "argon2_parallelism": 1}
PASSWORD = "correct horse battery staple"


def sizes(config: BenchConfig) -> dict[str, Any]:
    """Users, runs and idle samples for this run size."""
    if config.quick:
        return {"users": 100, "runs": 1, "idle_samples": 5, "workers": DEFAULT_WORKERS,
                "callers": CALLERS, "more_workers": 8}
    return {"users": 5000, "runs": config.runs or 2, "idle_samples": 60, "callers": CALLERS,
            "workers": DEFAULT_WORKERS, "more_workers": 8}


class Serve:
    """``mailroom serve`` as a child process on free loopback ports."""

    def __init__(self, data_dir: Path, smtp_port: int, workers: int) -> None:
        self.data_dir = data_dir
        self.smtp_port = smtp_port
        self.http_port = free_port()
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"serve-{smtp_port}.log"

    def start(self, wait: bool = True) -> None:
        """Launch the process; with wait, return once its SMTP port answers."""
        cmd = [sys.executable, "-m", "desktop.cli", "serve", "--data-dir", str(self.data_dir),
               "--smtp-port", str(self.smtp_port), "--http-port", str(self.http_port),
               "--workers", str(self.workers)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         env=child_env())
        if wait:
            wait_for_port(LOOPBACK, self.smtp_port, timeout=60, proc=self.proc)

    def stop(self) -> None:
        """SIGTERM (clean stop), then SIGKILL if needed."""
        if self.proc is not None:
            stop_process(self.proc, timeout=20)
            self.proc = None


def _engine(data_dir: Path, smtp_port: int) -> Any:
    from core.engine import Engine
    from core.settings import Settings

    settings = Settings(data_dir=data_dir, smtp_port=smtp_port, http_port=free_port())
    return Engine(settings.with_changes(**CHEAP_ARGON2))


def _wait_for_worker(engine: Any) -> None:
    """Until serve's worker process has started and beats (serve answers SMTP before)."""
    wait_until(lambda: engine.queue_stats().workers_alive > 0, timeout=60,
               what="serve's worker to start")


def _store(data_dir: Path) -> Any:
    from mailcatcher.store import MessageStore

    return MessageStore(data_dir / "mail.db")


class Sampler(threading.Thread):
    """Samples queue depth, outbox counts and captured messages every interval seconds."""

    def __init__(self, engine: Any, data_dir: Path, t0: float, interval: float = 0.1) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.engine = engine
        self.data_dir = data_dir
        self.t0 = t0
        self.interval = interval
        self.samples: list[dict[str, float]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        store = _store(self.data_dir)
        try:
            while not self._stop_event.is_set():
                stats = self.engine.queue_stats()
                self.samples.append({
                    "t_s": time.perf_counter() - self.t0,
                    "queue_depth": stats.pending_tasks,
                    "outbox_not_sent": sum(v for k, v in stats.by_status.items() if k != "sent"),
                    "sent": stats.by_status.get("sent", 0),
                    "captured": store.count_messages(),
                })
                self._stop_event.wait(self.interval)
        finally:
            store.close()

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop_event.set()
        self.join()


def _received_span(data_dir: Path) -> tuple[float, float, int]:
    """(first, last) receipt times as Unix seconds, and the number of messages stored."""
    import sqlite3

    conn = sqlite3.connect(f"file:{data_dir / 'mail.db'}?mode=ro", uri=True)
    try:
        first, last, count = conn.execute(
            "SELECT min(received_at), max(received_at), count(*) FROM messages").fetchone()
    finally:
        conn.close()
    return _ts(first), _ts(last), int(count)


def _ts(iso: str) -> float:
    value = datetime.fromisoformat(iso)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def end_to_end(tmp: Path, users: int, workers: int, callers: int = CALLERS) -> dict[str, Any]:
    """Sign up users from `callers` threads against a running serve; time until every
    email is captured."""
    data_dir = tmp / "data"
    serve = Serve(data_dir, free_port(), workers)
    serve.start()
    engine = _engine(data_dir, serve.smtp_port)
    try:
        _wait_for_worker(engine)
        t0 = time.perf_counter()
        sampler = Sampler(engine, data_dir, t0)
        sampler.start()

        def sign_up(first: int) -> None:
            for i in range(first, users, callers):
                engine.register(f"user{i}@example.com", PASSWORD)

        threads = [threading.Thread(target=sign_up, args=(c,)) for c in range(callers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        signup_s = time.perf_counter() - t0
        store = _store(data_dir)
        try:
            wait_until(lambda: store.count_messages() >= users, timeout=max(60, users / 20),
                       interval=0.02, what=f"{users} captured emails")
        finally:
            store.close()
        total_s = time.perf_counter() - t0
        sampler.stop()
        sent = engine.queue_stats().by_status.get("sent", 0)
    finally:
        engine.close()
        serve.stop()
    return {"users": users, "callers": callers, "signup_s": signup_s, "total_s": total_s,
            "signups_per_s": users / signup_s, "emails_per_s": users / total_s,
            "sent": sent, "timeline": sampler.samples}


def drain(tmp: Path, users: int, workers: int) -> dict[str, Any]:
    """Queue users' emails with nothing running, then time serve emptying the queue."""
    data_dir = tmp / "data"
    smtp_port = free_port()
    engine = _engine(data_dir, smtp_port)
    try:
        for i in range(users):
            engine.register(f"user{i}@example.com", PASSWORD)
    finally:
        engine.close()
    serve = Serve(data_dir, smtp_port, workers)
    t0 = time.perf_counter()
    serve.start(wait=False)
    store = _store(data_dir)
    try:
        wait_until(lambda: store.count_messages() >= users, timeout=max(60, users / 20),
                   interval=0.02, what=f"{users} captured emails")
        total_s = time.perf_counter() - t0
    finally:
        store.close()
        serve.stop()
    first, last, count = _received_span(data_dir)
    span = last - first
    return {"users": users, "launch_to_last_s": total_s, "first_to_last_s": span,
            "emails_per_s": (count - 1) / span if span > 0 else float("nan")}


def idle_latency(tmp: Path, samples: int, workers: int, seed: int = 6) -> dict[str, Any]:
    """Time from the start of register to the catcher's receipt, one sign-up at a time."""
    data_dir = tmp / "data"
    serve = Serve(data_dir, free_port(), workers)
    serve.start()
    engine = _engine(data_dir, serve.smtp_port)
    store = _store(data_dir)
    rng = random.Random(seed)
    latencies: list[float] = []
    try:
        _wait_for_worker(engine)
        engine.register("warmup@example.com", PASSWORD)
        wait_until(lambda: store.count_messages() >= 1, 30, what="the warm-up email")
        for i in range(samples):
            time.sleep(rng.uniform(0.3, 1.0))  # a pause on purpose: the worker goes idle
            started = time.time()
            res = engine.register(f"idle{i}@example.com", PASSWORD)
            message_id = engine.get_outbox(res.outbox_id).message_id
            found: list[Any] = []

            def captured(mid: str = message_id, out: list[Any] = found) -> bool:
                out[:] = store.find_by_message_id(mid)
                return bool(out)

            wait_until(captured, 30, interval=0.002, what="the email to be captured")
            latencies.append((found[0].received_at.timestamp() - started) * 1000.0)
    finally:
        store.close()
        engine.close()
        serve.stop()
    return summarize(latencies) | {"samples_ms": [round(x, 2) for x in latencies]}


def run(config: BenchConfig) -> dict[str, Any]:
    """Run the throughput benchmarks; print tables; return the JSON-ready result."""
    size = sizes(config)
    e2e: list[dict[str, Any]] = []
    e2e_one: list[dict[str, Any]] = []
    drains: list[dict[str, Any]] = []
    drains_more: list[dict[str, Any]] = []
    for run_no in range(size["runs"]):
        with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
            r = end_to_end(Path(tmp), size["users"], size["workers"], size["callers"])
            e2e.append(r)
            print(f"  run {run_no + 1} end to end, {size['callers']} callers: "
                  f"{r['emails_per_s']:.0f} emails/s (sign-ups {r['signups_per_s']:.0f}/s)",
                  flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
            r = end_to_end(Path(tmp), size["users"], size["workers"], 1)
            e2e_one.append(r)
            print(f"  run {run_no + 1} end to end, one caller: {r['emails_per_s']:.0f} "
                  f"emails/s (sign-ups {r['signups_per_s']:.0f}/s)", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
            d = drain(Path(tmp), size["users"], size["workers"])
            drains.append(d)
            print(f"  run {run_no + 1} drain: {d['emails_per_s']:.0f} emails/s", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
            d = drain(Path(tmp), size["users"], size["more_workers"])
            drains_more.append(d)
            print(f"  run {run_no + 1} drain with {size['more_workers']} worker threads: "
                  f"{d['emails_per_s']:.0f} emails/s", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        idle = idle_latency(Path(tmp), size["idle_samples"], size["workers"])

    e2e_rate = spread([r["emails_per_s"] for r in e2e])
    signup_rate = spread([r["signups_per_s"] for r in e2e])
    e2e_one_rate = spread([r["emails_per_s"] for r in e2e_one])
    signup_one_rate = spread([r["signups_per_s"] for r in e2e_one])
    drain_rate = spread([d["emails_per_s"] for d in drains])
    drain_more_rate = spread([d["emails_per_s"] for d in drains_more])
    print_table(
        f"Delivery throughput ({size['users']:,} sign-ups, mailroom serve with "
        f"{size['workers']} worker threads; median of {size['runs']} run(s))",
        ["measure", "median", "min", "max", "spread"],
        [[name, s["median"], s["min"], s["max"], f"±{s['spread_pct']:.0f} %"] for name, s in (
            (f"end to end, {size['callers']} callers, emails/s", e2e_rate),
            (f"sign-ups/s ({size['callers']} callers)", signup_rate),
            ("end to end, one caller, emails/s", e2e_one_rate),
            ("sign-ups/s (one caller)", signup_one_rate),
            ("drain (queue pre-filled), emails/s", drain_rate),
            (f"drain with {size['more_workers']} worker threads, emails/s", drain_more_rate))],
    )
    print_table(f"Idle sign-up to captured email, ms ({idle['n']} samples)",
                ["p50", "p95", "p99", "max"], [[idle["p50"], idle["p95"], idle["p99"],
                                                idle["max"]]])
    targets = {
        "end_to_end_emails_per_s": {"target": TARGET_EMAILS_PER_S, "value": e2e_rate["median"],
                                    "met": e2e_rate["median"] >= TARGET_EMAILS_PER_S},
        "idle_p50_ms": {"target": TARGET_IDLE_P50_MS, "value": idle["p50"],
                        "met": idle["p50"] < TARGET_IDLE_P50_MS},
        "idle_p99_ms": {"target": TARGET_IDLE_P99_MS, "value": idle["p99"],
                        "met": idle["p99"] < TARGET_IDLE_P99_MS},
    }
    result = {"sizes": size, "bench_argon2": CHEAP_ARGON2, "end_to_end": e2e_rate,
              "signups_per_s": signup_rate, "end_to_end_one_caller": e2e_one_rate,
              "signups_per_s_one_caller": signup_one_rate, "drain": drain_rate,
              "drain_more_workers": drain_more_rate, "idle_ms": idle, "targets": targets,
              "runs": {"end_to_end": e2e, "end_to_end_one_caller": e2e_one, "drain": drains,
                       "drain_more_workers": drains_more}}
    path = write_json(config.out_dir, "throughput", result)
    print(f"wrote {path}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line: python -m bench.throughput [--quick] [--runs N] [--out DIR]."""
    from bench.run_all import parse_config

    run(parse_config(argv, description=__doc__))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
