"""The app database's write transactions: waiting for the lock, and grouped writes."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core import db as core_db
from core.db import Database, FastTx


def _database(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'app.db'}")
    database.create_schema()
    return database


def _hold_write_lock(path: Path, release: threading.Event, held: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(10)
        conn.execute("COMMIT")
    finally:
        conn.close()


@contextmanager
def _write_lock_held(path: Path) -> Iterator[threading.Event]:
    """Another connection holds the database's write lock until the event yielded is set
    (or the block ends)."""
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, release, held))
    holder.start()
    try:
        assert held.wait(10)
        yield release
    finally:
        release.set()
        holder.join()


def _insert_beat(name: str) -> Callable[[FastTx], int]:
    def work(tx: FastTx) -> int:
        tx.execute("INSERT INTO workers (id, engine_id, pid, hostname, threads, started_at,"
                   " beat_at) VALUES (:id, 'e', 1, 'h', 1, 0, 0)", {"id": name})
        rows, _ = tx.execute("SELECT count(*) FROM workers", {})
        return int(rows[0][0])
    return work


def _beats(database: Database) -> list[str]:
    with database.fast_write() as tx:
        rows, _ = tx.execute("SELECT id FROM workers ORDER BY id", {})
    return [str(r[0]) for r in rows]


def test_fast_write_waits_for_another_writer_then_commits(tmp_path: Path) -> None:
    """A hot-path transaction that finds the write lock taken waits for it and commits."""
    database = _database(tmp_path)
    with _write_lock_held(tmp_path / "app.db") as release:
        threading.Timer(0.2, release.set).start()
        with database.fast_write() as tx:
            _insert_beat("w")(tx)
    assert _beats(database) == ["w"]
    database.close()


def test_fast_write_gives_up_after_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that never lets go makes the hot path fail with "database is locked"
    once the busy timeout has passed, not hang."""
    monkeypatch.setattr(core_db, "BUSY_TIMEOUT_MS", 300)
    database = _database(tmp_path)
    with _write_lock_held(tmp_path / "app.db"):
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            with database.fast_write():
                pass
    database.close()


def test_grouped_writes_from_many_threads_all_commit(tmp_path: Path) -> None:
    """Forty threads' grouped writes each commit once and each caller gets its own result."""
    database = _database(tmp_path)
    results: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        count = database.grouped_write(_insert_beat(f"t{i:02d}"))
        with lock:
            results.append(count)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _beats(database) == [f"t{i:02d}" for i in range(40)]
    assert sorted(results) == list(range(1, 41))  # each saw the rows committed before it
    database.close()


def _queued_behind_a_held_lock(
    database: Database, tmp_path: Path, works: list[Callable[[FastTx], int]]
) -> tuple[list[int | BaseException], int]:
    """Queue works as grouped writes while another connection holds the write lock, then
    let go; their outcomes in order, and how many transactions committed them. The group
    writer takes the first job(s) and waits for the lock; the others wait in its queue."""
    assert database.grouped_write(_insert_beat("warm-up")) == 1  # the group writer runs
    group = database._group
    assert group is not None
    commits_before = group.commits
    with _write_lock_held(tmp_path / "app.db"):
        futures = [group.submit(work) for work in works]
    outcomes: list[int | BaseException] = []
    for future in futures:
        error = future.exception(timeout=10)
        outcomes.append(error if error is not None else future.result())
    return outcomes, group.commits - commits_before


def test_grouped_writes_waiting_together_share_a_transaction(tmp_path: Path) -> None:
    """Ten writes that queue up while the lock is held commit in at most two transactions
    (the first one taken, then all the rest)."""
    database = _database(tmp_path)
    outcomes, commits = _queued_behind_a_held_lock(
        database, tmp_path, [_insert_beat(f"g{i}") for i in range(10)])
    assert not [o for o in outcomes if isinstance(o, BaseException)]
    assert len(_beats(database)) == 11  # with the warm-up
    assert commits <= 2
    database.close()


def test_a_failing_grouped_write_fails_alone(tmp_path: Path) -> None:
    """In a group, a write that raises gets its error; the others in its group commit."""
    database = _database(tmp_path)

    def broken(tx: FastTx) -> int:
        tx.execute("INSERT INTO workers (id) VALUES ('never')", {})  # NOT NULL columns
        return 0

    works = [_insert_beat(f"f{i}") for i in range(6)]
    works.insert(3, broken)
    outcomes, _ = _queued_behind_a_held_lock(database, tmp_path, works)
    assert isinstance(outcomes[3], sqlite3.IntegrityError)
    assert _beats(database) == [*(f"f{i}" for i in range(6)), "warm-up"]
    database.close()


def test_grouped_write_after_close_is_refused(tmp_path: Path) -> None:
    """A closed database says so instead of taking a write it would never run."""
    database = _database(tmp_path)
    assert database.grouped_write(_insert_beat("before")) == 1
    database.close()
    with pytest.raises(RuntimeError, match="closed"):
        database.grouped_write(_insert_beat("after"))
