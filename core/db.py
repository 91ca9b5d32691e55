"""The app database: engine, sessions and schema.

SQLite runs in WAL mode with a busy timeout. Write transactions start with
``BEGIN IMMEDIATE`` so that a transaction that reads before it writes never fails
half-way with "database is locked" (SQLite cannot upgrade a WAL read snapshot
that another writer has moved past; the busy handler does not help there).
A Session is opened per call and never shared between threads.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy import Engine as SAEngine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel, create_engine

from core import models  # noqa: F401  (registers the tables on SQLModel.metadata)

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000


def now_ts() -> float:
    """The current UTC time as a Unix timestamp, the way the database stores it."""
    return time.time()


def to_datetime(ts: float | None) -> datetime | None:
    """A stored timestamp as a timezone-aware UTC datetime (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def is_locked_error(exc: BaseException) -> bool:
    """True for SQLite's transient "database is locked/busy" failures."""
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text


class FastTx(Protocol):
    """A write transaction for hot paths; SQL uses :name parameters."""

    def execute(self, sql: str, params: Mapping[str, Any]) -> tuple[list[tuple[Any, ...]], int]:
        """Run one statement; returns (rows it returned, rows it changed)."""
        ...


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Mapping[str, Any]) -> tuple[list[tuple[Any, ...]], int]:
        cursor = self._conn.execute(sql, params)
        try:
            rows = cursor.fetchall()
            return rows, cursor.rowcount
        finally:
            cursor.close()


class _CoreTx:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Mapping[str, Any]) -> tuple[list[tuple[Any, ...]], int]:
        result = self._conn.execute(text(sql), dict(params))
        rows = [tuple(r) for r in result] if result.returns_rows else []
        return rows, int(result.rowcount)


class Database:
    """One app database: a SQLAlchemy engine plus read and write sessions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        connect_args: dict[str, Any] = {}
        if self.is_sqlite:
            connect_args = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
        self.engine: SAEngine = create_engine(url, connect_args=connect_args)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
        self._write_engine = self.engine.execution_options(mailroom_write=True)
        # Hot paths (register, claim, finish) on SQLite use one plain sqlite3
        # connection per thread: SQLAlchemy adds ~0.4 ms to every transaction. They are
        # kept by OS thread id, not in a threading.local: a Qt pool thread gets a new
        # Python thread state (and so a new threading.local) for every job it runs, and
        # a connection per job piled up (a leak of about 0.3 MB a sign-up in the window).
        # A thread that ended leaves its connection to the next thread given its id.
        self._closed = False
        self._fast_lock = threading.Lock()
        self._fast_write_lock = threading.RLock()
        self._group_lock = threading.Lock()
        self._group: _GroupWriter | None = None
        self._group_closed = False
        self._fast_conns: dict[int, sqlite3.Connection] = {}
        self._sqlite_path = self.engine.url.database if self.is_sqlite else None

    def create_schema(self) -> None:
        """Create missing tables and indexes, and add columns newer than the file (idempotent)."""
        for attempt in range(3):
            try:
                self.run_locked_retry(lambda: SQLModel.metadata.create_all(self.engine))
                self.run_locked_retry(self._add_missing_columns)
                return
            except OperationalError as exc:
                # Another process created the same table or column a moment ago.
                text_ = str(exc).lower()
                if attempt == 2 or not ("already exists" in text_ or "duplicate column" in text_):
                    raise

    def _add_missing_columns(self) -> None:
        inspector = inspect(self.engine)
        with self.engine.begin() as conn:
            for table in SQLModel.metadata.sorted_tables:
                existing = {c["name"] for c in inspector.get_columns(table.name)}
                for column in table.columns:
                    if column.name in existing:
                        continue
                    ddl_type = column.type.compile(dialect=self.engine.dialect)
                    default = getattr(column.default, "arg", None)
                    clause = ""
                    if isinstance(default, bool):
                        clause = f" NOT NULL DEFAULT {int(default)}"
                    elif isinstance(default, int | float):
                        clause = f" NOT NULL DEFAULT {default}"
                    elif isinstance(default, str):
                        clause = " NOT NULL DEFAULT '" + default.replace("'", "''") + "'"
                    conn.exec_driver_sql(
                        f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {ddl_type}{clause}'
                    )

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A short-lived session for reading."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one write transaction (BEGIN IMMEDIATE on SQLite), committed on exit."""
        with Session(self._write_engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core connection in one write transaction (BEGIN IMMEDIATE), committed on exit."""
        with self._write_engine.begin() as conn:
            yield conn

    @contextmanager
    def fast_write(self) -> Iterator[FastTx]:
        """A write transaction for hot paths: BEGIN IMMEDIATE ... COMMIT, rolled back on error."""
        if not self._sqlite_path or self._sqlite_path == ":memory:":
            with self.write_connection() as core_conn:
                yield _CoreTx(core_conn)
            return
        raw = self._thread_connection()
        # Threads of this process queue here (a lock hand-over is cheap) rather than
        # each polling SQLite for the write lock; only other processes are polled for.
        with self._fast_write_lock:
            begin_immediate(raw)
            try:
                yield _SqliteTx(raw)
                raw.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise

    def grouped_write(self, work: Callable[[FastTx], T]) -> T:
        """Run work(tx) in a write transaction shared with other threads' grouped writes.

        One thread of this process runs every grouped write that is waiting in one
        BEGIN IMMEDIATE ... COMMIT. If one of them raises, the transaction is rolled
        back and each is run again on its own, so that the error reaches its caller
        only and the others commit. Returns once committed. A busy queue worker makes
        two small writes per email from many threads; grouped, they take the write
        lock a few times instead of a thousand times a second.

        work runs in another thread, perhaps twice (after a rollback): it must be a
        whole transaction's work. Never call this inside fast_write(): that thread holds
        the process's write lock, which the grouping thread needs.
        """
        if not self._sqlite_path or self._sqlite_path == ":memory:":
            with self.fast_write() as tx:
                return work(tx)
        with self._group_lock:
            if self._group_closed:
                raise RuntimeError("database is closed")
            if self._group is None:
                self._group = _GroupWriter(self)
            future = self._group.submit(work)
        result: T = future.result()
        return result

    def _thread_connection(self) -> sqlite3.Connection:
        ident = threading.get_ident()
        conn = self._fast_conns.get(ident)
        if conn is not None:
            return conn
        assert self._sqlite_path is not None
        conn = sqlite3.connect(
            self._sqlite_path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
            isolation_level=None,
        )
        _sqlite_on_connect(conn, None)
        with self._fast_lock:
            if self._closed:
                conn.close()
                raise RuntimeError("database is closed")
            self._fast_conns[ident] = conn
        return conn

    def run_locked_retry(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Run fn, retrying while SQLite says the database is locked, up to timeout seconds.

        fn must be a whole transaction (it is re-run from the start).
        """
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            try:
                return fn()
            except (OperationalError, sqlite3.OperationalError) as exc:
                if not is_locked_error(exc) or time.monotonic() >= deadline:
                    raise
                log.warning("database is locked; retrying in %.2fs", delay)
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def close(self) -> None:
        """Finish the grouped writes already asked for, then close every connection."""
        with self._group_lock:
            self._group_closed = True
            group, self._group = self._group, None
        if group is not None:
            group.stop()
        with self._fast_lock:
            self._closed = True
            conns, self._fast_conns = self._fast_conns, {}
        for conn in conns.values():
            conn.close()
        self.engine.dispose()


_GroupJob = tuple[Callable[[FastTx], Any], "concurrent.futures.Future[Any]"]


class _GroupWriter:
    """The thread behind Database.grouped_write (a group commit, as in the catcher)."""

    MAX_GROUP = 64

    def __init__(self, db: Database) -> None:
        self._db = db
        self.commits = 0  # transactions committed (for tests and curious readers)
        self._queue: queue.SimpleQueue[_GroupJob | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="mailroom-db-group",
                                        daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[FastTx], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((work, future))
        return future

    def stop(self) -> None:
        """Run what was submitted, then end the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            while len(jobs) < self.MAX_GROUP:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            self._write(jobs)
            if stop:
                return

    def _write(self, jobs: list[_GroupJob]) -> None:
        if len(jobs) == 1:
            self._write_one(jobs[0])
            return
        try:
            with self._db.fast_write() as tx:
                results = [work(tx) for work, _ in jobs]
        except Exception as exc:  # noqa: BLE001 - see below
            if is_locked_error(exc):  # the lock, not a job: each caller retries
                for _, future in jobs:
                    future.set_exception(exc)
                return
            # A job failed and the transaction was rolled back: each again on its own,
            # so that only the one at fault fails.
            for job in jobs:
                self._write_one(job)
            return
        except BaseException as exc:  # noqa: BLE001 - nothing was committed; all hear why
            for _, future in jobs:
                future.set_exception(exc)
            return
        self.commits += 1
        for (_, future), result in zip(jobs, results, strict=True):
            future.set_result(result)

    def _write_one(self, job: _GroupJob) -> None:
        work, future = job
        try:
            with self._db.fast_write() as tx:
                result = work(tx)
        except BaseException as exc:  # noqa: BLE001 - it goes to its caller
            future.set_exception(exc)
            return
        self.commits += 1
        future.set_result(result)


def begin_immediate(conn: sqlite3.Connection, busy_timeout_ms: int | None = None) -> None:
    """BEGIN IMMEDIATE, waiting for another writer in steps of 0.1-2 ms.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20 ... ms between tries, so a
    transaction that finds the write lock taken for a tenth of a millisecond waits at
    least a millisecond; on a busy queue that was half of a sign-up's time. The busy
    handler is off only for this statement (busy_timeout_ms, default BUSY_TIMEOUT_MS,
    is the connection's and the longest wait here).
    """
    timeout_ms = BUSY_TIMEOUT_MS if busy_timeout_ms is None else busy_timeout_ms
    delay = 0.0001
    deadline: float | None = None
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not is_locked_error(exc):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + timeout_ms / 1000
                elif now >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.002)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module: the "begin" hook
    # below issues BEGIN / BEGIN IMMEDIATE itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode survives a killed process; only power loss can undo commits.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    if conn.get_execution_options().get("mailroom_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")
