"""Change signals: a cheap way for the GUI to learn that any process wrote something.

`ChangeWatcher` is the interface; `SqliteChangeWatcher` answers it with SQLite's
PRAGMA data_version on read connections of its own (it changes whenever another
connection, in any process, commits). With PostgreSQL a LISTEN/NOTIFY or a
change-counter poll would implement the same two methods.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol


class ChangeWatcher(Protocol):
    """Has anything been committed since I last asked?"""

    def changed(self) -> bool:
        """True if something was committed since the last call (cheap; call it often)."""
        ...

    def close(self) -> None:
        """Release the watcher's connections."""
        ...


class SqliteChangeWatcher:
    """Tells cheaply whether any process committed to the app or queue database since last asked.

    Uses SQLite's PRAGMA data_version on read connections of its own. With another
    database (PostgreSQL) a different watcher would poll a change counter or LISTEN.
    """

    def __init__(self, paths: Iterable[Path]) -> None:
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        for path in paths:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=1.0
            )
            conn.isolation_level = None
            self._conns.append(conn)
        self._versions = self._read()

    def _read(self) -> list[int]:
        out: list[int] = []
        for conn in self._conns:
            try:
                out.append(int(conn.execute("PRAGMA data_version").fetchone()[0]))
            except sqlite3.Error:
                out.append(-1)
        return out

    def changed(self) -> bool:
        """True if something was committed (by another connection) since the last call."""
        with self._lock:
            if not self._conns:
                return False
            now = self._read()
            changed = now != self._versions
            self._versions = now
            return changed

    def close(self) -> None:
        """Close the watcher's connections."""
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns = []
