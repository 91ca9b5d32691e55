"""Fixtures for the catcher's tests: a real MessageStore in a temporary folder, a real server.

The server listens on a free loopback port; every test talks real SMTP to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailcatcher.server import CatcherServer
from mailcatcher.store import MessageStore


@pytest.fixture
def store(data_dir: Path) -> Iterator[MessageStore]:
    """A fresh message store (SQLite file) in the test's data folder."""
    s = MessageStore(data_dir / "mail.db")
    yield s
    s.close()


@pytest.fixture
def catcher(store: MessageStore, free_port: Callable[[], int]) -> Iterator[CatcherServer]:
    """A running catcher on a free loopback port, writing to `store`."""
    server = CatcherServer(store, port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_catcher(
    store: MessageStore, free_port: Callable[[], int]
) -> Iterator[Callable[..., CatcherServer]]:
    """Start catchers with other options (size limit, ...); all stopped at the end."""
    started: list[CatcherServer] = []

    def make(**options: object) -> CatcherServer:
        server = CatcherServer(store, port=free_port(), **options)  # type: ignore[arg-type]
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
