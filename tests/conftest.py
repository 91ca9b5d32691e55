"""Fixtures shared by every test: free loopback ports and fresh data folders.

Fixtures start real things (SQLite files, SMTP servers, Huey consumers), yield them
and stop them; tests never talk to anything but loopback.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on host right now (aiosmtpd cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Call it for as many free loopback ports as a test needs."""
    return find_free_port


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty Mailroom data folder inside the test's temporary folder."""
    path = tmp_path / "data"
    path.mkdir()
    return path
