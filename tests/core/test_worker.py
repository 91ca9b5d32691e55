"""The queue's machinery: embedded and standalone workers, heartbeat, sweeper, change signal."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core import outbox
from core.engine import Engine
from core.worker import Worker
from tests.core.conftest import PASSWORD, SmtpServer, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _status(engine: Engine, outbox_id: int) -> str:
    row = engine.get_outbox(outbox_id)
    assert row is not None
    return row.status


def test_embedded_worker_leaves_signal_handlers_alone(engine: Engine) -> None:
    """Starting and stopping an embedded worker changes no signal handler of the host."""
    signals = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    before = [signal.getsignal(s) for s in signals]
    w = engine.start_worker(2)
    during = [signal.getsignal(s) for s in signals]
    w.stop()
    after = [signal.getsignal(s) for s in signals]
    assert before == during == after


def test_idle_worker_picks_up_new_work_within_a_second(
    engine: Engine, worker: Worker, smtp: SmtpServer
) -> None:
    """After idling long enough to back off fully, a new email is sent in well under a second."""
    time.sleep(1.5)  # the idle period is the condition under test
    t0 = time.monotonic()
    r = engine.register("idle@example.com", PASSWORD)
    wait_until(lambda: _status(engine, r.outbox_id) == "sent", 5, "sent")
    assert time.monotonic() - t0 < 1.0


def test_heartbeat_shows_live_workers(engine: Engine) -> None:
    """queue_stats() counts a running worker and stops counting it once stopped."""
    assert engine.queue_stats().workers_alive == 0
    w = engine.start_worker(3)
    try:
        stats = engine.queue_stats()
        assert stats.workers_alive == 1 and stats.worker_threads == 3
    finally:
        w.stop()
    assert engine.queue_stats().workers_alive == 0


def test_heartbeat_seen_from_another_engine(make_engine: Callable[..., Engine]) -> None:
    """A worker started by one Engine is visible to another on the same data folder."""
    a, b = make_engine(), make_engine()
    w = a.start_worker(1)
    try:
        assert b.queue_stats().workers_alive == 1
    finally:
        w.stop()


def test_queue_stats_counts_pending_tasks_and_statuses(engine: Engine) -> None:
    """Without a worker, sign-ups show as pending tasks and queued rows."""
    for i in range(3):
        engine.register(f"q{i}@example.com", PASSWORD)
    stats = engine.queue_stats()
    assert stats.pending_tasks == 3
    assert stats.by_status["queued"] == 3 and stats.by_status["sent"] == 0


def test_sweeper_leaves_rows_whose_task_is_waiting(engine: Engine) -> None:
    """A queued row that still has a task in the queue is not enqueued a second time."""
    engine.register("waiting@example.com", PASSWORD)
    wait_until(lambda: outbox.stranded_ids(engine.db, engine.settings.sweep_grace_seconds),
               5, "row past the grace period")
    assert engine.sweep() == 0
    assert engine.queue.pending_count() == 1


def test_sweeper_reenqueues_a_row_whose_task_was_lost(engine: Engine, smtp: SmtpServer) -> None:
    """A queued row with no task (lost enqueue) is enqueued again after the grace period."""
    r = engine.register("lost@example.com", PASSWORD)
    engine.queue.flush()
    assert engine.sweep() == 0  # still inside the grace period
    wait_until(lambda: engine.sweep() == 1, 5, "the sweeper to enqueue the row")
    assert engine.queue.pending_count() == 1
    w = engine.start_worker(1)
    try:
        wait_until(lambda: _status(engine, r.outbox_id) == "sent", 5, "sent")
    finally:
        w.stop()


def test_sweeper_recovers_a_row_whose_lease_expired(engine: Engine, smtp: SmtpServer) -> None:
    """A row left `sending` by a worker that died is retried once its lease runs out."""
    r = engine.register("orphan@example.com", PASSWORD)
    engine.queue.flush()
    claimed = outbox.claim(engine.db, r.outbox_id, lease_seconds=0.2)  # then the worker "dies"
    assert claimed is not None
    assert engine.sweep() == 0  # lease still running
    wait_until(lambda: engine.sweep() == 1, 5, "the lease to expire")
    attempts = engine.list_attempts(r.outbox_id)
    assert [a.outcome for a in attempts] == ["retry"]
    assert "abandoned" in (attempts[0].error or "")
    w = engine.start_worker(1)
    try:
        wait_until(lambda: _status(engine, r.outbox_id) == "sent", 5, "sent")
    finally:
        w.stop()
    assert len(smtp.messages) == 1


def test_sweeper_recovers_rows_of_a_worker_whose_heartbeat_stopped(engine: Engine) -> None:
    """A `sending` row claimed by a worker with no heartbeat is released before its lease ends."""
    r = engine.register("killed@example.com", PASSWORD)
    engine.queue.flush()
    assert outbox.claim(engine.db, r.outbox_id, 3600.0, claimed_by="dead-engine") is not None
    wait_until(lambda: engine.sweep() == 1, 5, "the dead worker's row to be released")
    assert _status(engine, r.outbox_id) == "retrying"


def test_sweeper_leaves_rows_of_a_live_worker(make_engine: Callable[..., Engine]) -> None:
    """A `sending` row claimed by a worker that still beats is not taken away."""
    live, other = make_engine(), make_engine()
    # Queued (and its task dropped) before the live worker starts, so that the worker
    # cannot take the row first; its sweeper leaves a fresh queued row alone (grace).
    r = other.register("busy@example.com", PASSWORD, delivery="queue")
    other.queue.flush()
    w = live.start_worker(1)
    try:
        assert outbox.claim(other.db, r.outbox_id, 3600.0, claimed_by=live.instance_id)
        time.sleep(3 * other.settings.heartbeat_seconds + 0.2)  # longer than "stale"
        assert other.sweep() == 0
        assert _status(other, r.outbox_id) == "sending"
    finally:
        w.stop()


def test_worker_sweeps_periodically_by_itself(engine: Engine, smtp: SmtpServer) -> None:
    """A running worker's own sweeper recovers a lost row without anyone calling sweep()."""
    w = engine.start_worker(1)
    try:
        engine.queue.flush()
        r = engine.register("selfheal@example.com", PASSWORD)
        engine.queue.flush()  # the task is gone before a worker could take it
        wait_until(lambda: _status(engine, r.outbox_id) == "sent", 10, "sent")
    finally:
        w.stop()


def test_change_watcher_reports_commits_from_other_connections(engine: Engine) -> None:
    """changed() is False when nothing happened and True after another connection commits."""
    watcher = engine.change_watcher()
    try:
        assert watcher.changed() is False
        engine.register("watched@example.com", PASSWORD)
        assert watcher.changed() is True
        assert watcher.changed() is False
        with sqlite3.connect(engine.settings.app_db_path) as conn:  # another process would do
            conn.execute("update users set display_name='x'")
        assert watcher.changed() is True
    finally:
        watcher.close()


def test_attempt_feed_and_signup_path(engine: Engine, smtp: SmtpServer) -> None:
    """list_attempts_since pages through attempts; get_signup_path gathers one sign-up."""
    first = engine.register("path@example.com", PASSWORD, delivery="sync")
    engine.register("path@example.com", PASSWORD, delivery="sync")  # duplicate: a notice
    feed = engine.list_attempts_since(0)
    assert [a.outcome for a in feed] == ["sent", "sent"]
    assert [a.to for a in feed] == ["path@example.com", "path@example.com"]
    assert engine.list_attempts_since(feed[0].id) == feed[1:]
    assert first.user_id is not None
    path = engine.get_signup_path(first.user_id)
    assert path is not None
    assert [o.kind for o in path.outbox] == ["activation", "signup_attempt_notice"]
    assert all(len(path.attempts[o.id]) == 1 for o in path.outbox)
    assert path.user.email == "path@example.com" and path.activated_at is None
    assert engine.get_signup_path(12345) is None


def test_listings_page_and_filter(engine: Engine) -> None:
    """list_users and list_outbox return newest first and honour limit, offset, status, user."""
    ids = [engine.register(f"p{i}@example.com", PASSWORD).user_id for i in range(5)]
    assert [u.id for u in engine.list_users(limit=2)] == ids[::-1][:2]
    assert [u.id for u in engine.list_users(limit=2, offset=2)] == ids[::-1][2:4]
    assert engine.count_users() == 5
    assert len(engine.list_outbox(status="queued")) == 5
    assert engine.list_outbox(status="sent") == []
    assert [o.user_id for o in engine.list_outbox(user_id=ids[0])] == [ids[0]]


def test_counts_and_pages_up_to_an_id_leave_out_newer_rows(engine: Engine) -> None:
    """With upto, counts and pages of users and outbound emails leave out newer rows, so a
    list paged after more sign-ups still lines up with its count."""
    first = [engine.register(f"q{i}@example.com", PASSWORD) for i in range(4)]
    for i in range(3):
        engine.register(f"late{i}@example.com", PASSWORD)
    top_user, top_mail = first[-1].user_id, first[-1].outbox_id
    assert top_user is not None and top_mail is not None
    assert engine.count_users(upto=top_user) == 4 and engine.count_users() == 7
    assert [u.id for u in engine.list_users(offset=1, upto=top_user)] == [
        r.user_id for r in first[::-1][1:]]
    assert engine.count_outbox(upto=top_mail) == 4
    assert engine.count_outbox(status="queued", upto=top_mail) == 4
    assert engine.count_outbox(status="sent", upto=top_mail) == 0
    assert [o.id for o in engine.list_outbox(status="queued", upto=top_mail)] == [
        r.outbox_id for r in first[::-1]]


def test_run_worker_stops_cleanly_on_sigterm(data_dir: Path, smtp: SmtpServer) -> None:
    """The standalone worker process delivers, and exits 0 soon after SIGTERM."""
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from core.engine import Engine
        from tests.core.conftest import engine_settings
        engine = Engine(engine_settings(Path({str(data_dir)!r}), {smtp.port}))
        print("ready", flush=True)
        engine.run_worker(2)
        engine.close()
        print("bye", flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        from tests.core.conftest import engine_settings

        with Engine(engine_settings(data_dir, smtp.port)) as engine:
            r = engine.register("separate@example.com", PASSWORD)
            wait_until(lambda: _status(engine, r.outbox_id) == "sent", 10, "sent by the process")
            wait_until(lambda: engine.queue_stats().workers_alive == 1, 5, "heartbeat")
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=10)
            assert proc.returncode == 0
            assert "bye" in out
            assert engine.queue_stats().workers_alive == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.slow
def test_engines_started_together_share_one_schema_and_secret(
    data_dir: Path, smtp: SmtpServer
) -> None:
    """Several processes opening a fresh data folder at once all start, with one secret."""
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from core.engine import Engine
        from tests.core.conftest import engine_settings
        with Engine(engine_settings(Path({str(data_dir)!r}), {smtp.port})) as engine:
            print(engine.secret.hex())
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
    assert len({out.strip() for out, _ in outputs}) == 1


def test_same_process_enqueue_wakes_an_idle_worker_at_once(
    make_engine: Callable[..., Engine], smtp: SmtpServer
) -> None:
    """With polling slowed to 5 s, an email registered in this process is still sent at once."""
    engine = make_engine(worker_poll_seconds=5.0, worker_max_poll_seconds=5.0)
    w = engine.start_worker(2)
    try:
        time.sleep(0.3)  # let both threads find the queue empty and go to sleep
        t0 = time.monotonic()
        r = engine.register("woken@example.com", PASSWORD)
        wait_until(lambda: _status(engine, r.outbox_id) == "sent", 5, "sent")
        assert time.monotonic() - t0 < 1.0
    finally:
        w.stop()


def test_delivery_tasks_never_read_or_clear_revocation_flags(
    make_engine: Callable[..., Engine], smtp: SmtpServer
) -> None:
    """A delivered task costs the queue database its dequeue only: no revocation lookup
    before it, no flag deletion after it (Mailroom never revokes; the outbox row decides)."""
    engine = make_engine()
    statements: list[str] = []
    engine.queue.huey.storage.conn.set_trace_callback(statements.append)  # Huey's only one
    w = engine.start_worker(2)
    try:
        ids = [engine.register(f"rv{i}@example.com", PASSWORD).outbox_id for i in range(5)]
        wait_until(lambda: all(_status(engine, i) == "sent" for i in ids), 10, "sent")
    finally:
        w.stop()
    assert sum("delete from task" in s.lower() for s in statements) >= 5  # the dequeues
    assert not [s for s in statements if " kv " in s.lower()]


def test_revoking_a_delivery_task_is_refused(engine: Engine) -> None:
    """Revoking would be ignored by the queue, so it is refused with the reason."""
    with pytest.raises(NotImplementedError, match="outbox row"):
        engine.queue.huey.revoke_by_id("some-task-id")


def test_an_idle_worker_stops_at_once_however_long_its_threads_would_wait(
    make_engine: Callable[..., Engine],
) -> None:
    """Idle threads wait long between polls (few wake-ups), yet stop() ends them at once."""
    engine = make_engine(worker_poll_seconds=5.0, worker_max_poll_seconds=5.0)
    w = engine.start_worker(4)
    time.sleep(0.5)  # every thread is in its first 2.5-5 s wait: the condition under test
    started = time.monotonic()
    w.stop()
    assert time.monotonic() - started < 2.0
