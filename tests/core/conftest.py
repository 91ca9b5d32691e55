"""Fixtures for the engine's tests: a real SMTP server, real engines, real Huey consumers.

`smtp` is a tiny aiosmtpd server on a free loopback port whose handler keeps every
message in a list and can be told to answer RCPT or DATA with a 4xx/5xx, or be
stopped so that connections are refused. Engines use real SQLite files in the
test's folder, cheap argon2 parameters and short retry delays.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from core.engine import Engine
from core.settings import RetryPolicy, Settings
from core.worker import Worker
from tests.waiting import wait_until

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Captured:
    """One message the test server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes


@dataclass
class RecordingHandler:
    """Stores accepted messages; answers with `rcpt_reply`/`data_reply` when they are set."""

    messages: list[Captured] = field(default_factory=list)
    # Every DATA payload received, including those answered with data_reply.
    seen: list[bytes] = field(default_factory=list)
    rcpt_reply: str | None = None
    # Replies for recipients starting with a prefix (one address fails, others pass).
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    # Seconds to wait before answering DATA (to trip the client's timeout).
    data_delay: float = 0.0
    connections: int = 0
    ehlo_names: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:
        with self.lock:
            self.connections += 1
            self.ehlo_names.append(hostname)
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        for prefix, reply in self.rcpt_replies.items():
            if address.startswith(prefix):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        assert isinstance(content, bytes)
        with self.lock:
            self.seen.append(content)
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_reply:
            return self.data_reply
        with self.lock:
            self.messages.append(
                Captured(str(envelope.mail_from), tuple(envelope.rcpt_tos), content)
            )
        return "250 2.0.0 Accepted"


class SmtpServer:
    """A test SMTP server that can be stopped (connection refused) and started again."""

    def __init__(self, port: int) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.handler = RecordingHandler()
        self._controller: Controller | None = None

    def start(self) -> None:
        """Listen on the same port again."""
        self._controller = Controller(self.handler, hostname=self.host, port=self.port)
        self._controller.start()

    def stop(self) -> None:
        """Stop listening: connections are refused from now on."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[Captured]:
        with self.handler.lock:
            return list(self.handler.messages)

    def wait_for_messages(self, n: int, timeout: float = 10.0) -> list[Captured]:
        """Wait until at least n messages arrived (fails the test after timeout)."""
        wait_until(lambda: len(self.messages) >= n, timeout, f"{n} messages")
        return self.messages





@pytest.fixture
def smtp(free_port: Callable[[], int]) -> Iterator[SmtpServer]:
    """A running recording SMTP server on a free loopback port."""
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


FAST_RETRY = RetryPolicy(max_attempts=3, base_seconds=0.05, factor=2.0, cap_seconds=0.2,
                         jitter=0.1)


def engine_settings(data_dir: Path, smtp_port: int, **changes: Any) -> Settings:
    """Settings for tests: cheap argon2, short retries, short sweeper grace."""
    values: dict[str, Any] = dict(
        data_dir=data_dir,
        smtp_port=smtp_port,
        smtp_timeout=5.0,
        http_port=8025,
        argon2_time_cost=1,
        argon2_memory_cost=1024,
        argon2_parallelism=1,
        retry=FAST_RETRY,
        sweep_grace_seconds=0.2,
        sweep_interval_seconds=0.2,
        heartbeat_seconds=0.2,
        scheduler_interval_seconds=0.1,
    )
    values.update(changes)
    return Settings(**values)




@pytest.fixture
def make_engine(data_dir: Path, smtp: SmtpServer) -> Iterator[Callable[..., Engine]]:
    """Build engines on the test's data folder and server; all closed at the end."""
    engines: list[Engine] = []

    def make(**changes: Any) -> Engine:
        engine = Engine(engine_settings(data_dir, smtp.port, **changes))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    """An engine with test settings (no worker running)."""
    return make_engine()


@pytest.fixture
def worker(engine: Engine) -> Iterator[Worker]:
    """A real embedded Huey consumer (2 threads) for `engine`."""
    w = engine.start_worker(2)
    yield w
    w.stop()
