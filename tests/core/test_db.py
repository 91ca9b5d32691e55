"""The app database's write transactions wait for each other without losing anything."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from core import db as core_db
from core.db import Database


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


def test_fast_write_waits_for_another_writer_then_commits(tmp_path: Path) -> None:
    """A hot-path transaction that finds the write lock taken waits for it and commits."""
    database = _database(tmp_path)
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(
        target=_hold_write_lock, args=(tmp_path / "app.db", release, held))
    holder.start()
    assert held.wait(10)
    threading.Timer(0.2, release.set).start()
    try:
        with database.fast_write() as tx:
            tx.execute("INSERT INTO workers (id, engine_id, pid, hostname, threads,"
                       " started_at, beat_at) VALUES ('w', 'e', 1, 'h', 1, 0, 0)", {})
    finally:
        release.set()
        holder.join()
    with database.fast_write() as tx:
        rows, _ = tx.execute("SELECT id FROM workers", {})
    assert rows == [("w",)]
    database.close()


def test_fast_write_gives_up_after_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that never lets go makes the hot path fail with "database is locked"
    once the busy timeout has passed, not hang."""
    monkeypatch.setattr(core_db, "BUSY_TIMEOUT_MS", 300)
    database = _database(tmp_path)
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(
        target=_hold_write_lock, args=(tmp_path / "app.db", release, held))
    holder.start()
    assert held.wait(10)
    try:
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            with database.fast_write():
                pass
    finally:
        release.set()
        holder.join()
    database.close()
