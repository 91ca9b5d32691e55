"""Fixtures for the window's tests: Qt WebEngine ready offscreen, a real Runtime, the window.

Qt WebEngine must be imported, and the preview's URL schemes registered, before the
QApplication exists; pytest-qt creates it lazily, so this module does both at import.
Chromium refuses its sandbox as root, hence QTWEBENGINE_DISABLE_SANDBOX.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")

import http.server  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import shiboken6  # noqa: E402

from desktop.app import prepare_qt  # noqa: E402

prepare_qt()

from PySide6.QtCore import QSettings  # noqa: E402

from core.settings import RetryPolicy, Settings  # noqa: E402

# Harmless messages Qt WebEngine prints when it runs offscreen without a GPU, D-Bus or
# a sandbox. Only these exact messages are ignored; any other Qt warning fails a test.
QT_LOG_IGNORE = (
    r"^Sandboxing disabled by user\.$",
    r"^QRhiGles2: Failed to create (temporary )?context$",
    r"^Failed to create RHI for backend: OpenGL$",
    r"^This plugin does not support createPlatformVulkanInstance$",
    r"^QVulkanInstance: Failed to initialize Vulkan$",
    r"^GBM is not supported with the current configuration and Vulkan is not available\. "
    r"Fallback to software rendering\.$",
    r"^This plugin does not support propagateSizeHints\(\)$",
    r"^GPUInfo not initialized on GpuInfoUpdate$",
    r"^This plugin does not support raise\(\)$",
    r"^This plugin does not support grabbing the keyboard$",
)

PASSWORD = "correct horse battery"
FAST_RETRY = RetryPolicy(max_attempts=4, base_seconds=0.2, factor=2.0, cap_seconds=1.0,
                         jitter=0.1)


def pytest_configure(config: pytest.Config) -> None:
    for pattern in QT_LOG_IGNORE:
        config.addinivalue_line("qt_log_ignore", pattern)


def gui_settings(data_dir: Path, smtp_port: int, http_port: int, **changes: Any) -> Settings:
    """Settings for window tests: free ports, cheap argon2, short retries and heartbeats."""
    values: dict[str, Any] = dict(
        data_dir=data_dir,
        smtp_port=smtp_port,
        http_port=http_port,
        smtp_timeout=5.0,
        argon2_time_cost=1,
        argon2_memory_cost=1024,
        argon2_parallelism=1,
        retry=FAST_RETRY,
        heartbeat_seconds=0.2,
    )
    values.update(changes)
    return Settings(**values)


@pytest.fixture
def qsettings(tmp_path: Path) -> QSettings:
    """A QSettings file of the test's own (never the user's real settings)."""
    return QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def runtime(data_dir: Path, free_port: Callable[[], int]) -> Iterator[Any]:
    """The real product: engine, catcher, one worker and the HTTP port on free loopback ports."""
    from desktop.runtime import Runtime

    rt = Runtime(gui_settings(data_dir, free_port(), free_port()), workers=1)
    rt.start()
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture
def window(qtbot: Any, runtime: Any, qsettings: QSettings) -> Iterator[Any]:
    """The main window over the real runtime, polling fast.

    Not handed to qtbot.addWidget: it is closed and deleted here, before the runtime stops
    (and Qt WebEngine wants its pages deleted before their profile).
    """
    from desktop.main_window import MainWindow

    win = MainWindow(runtime, settings_store=qsettings, poll_interval_ms=100)
    win.show()
    qtbot.waitExposed(win)
    try:
        yield win
    finally:
        win.close()
        shiboken6.delete(win)  # now, while the runtime still runs; the page before its profile


class SwitchableHandler:
    """An aiosmtpd handler that accepts everything, or answers RCPT with `rcpt_reply` if set."""

    def __init__(self) -> None:
        self.rcpt_reply: str | None = None
        self.accepted: list[bytes] = []

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.accepted.append(bytes(envelope.original_content or envelope.content))
        return "250 OK"


@pytest.fixture
def external_smtp(free_port: Callable[[], int]) -> Iterator[tuple[int, SwitchableHandler]]:
    """Another SMTP server (plain aiosmtpd on loopback) whose answer a test can switch."""
    from aiosmtpd.controller import Controller

    handler = SwitchableHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, handler
    finally:
        controller.stop()


@pytest.fixture
def external_runtime(
    data_dir: Path, free_port: Callable[[], int], external_smtp: tuple[int, SwitchableHandler]
) -> Iterator[Any]:
    """The runtime without its catcher, delivering to `external_smtp` (`mailroom --no-catcher`)."""
    from desktop.runtime import Runtime

    port, _ = external_smtp
    rt = Runtime(gui_settings(data_dir, port, free_port()), run_catcher=False, workers=1)
    rt.start()
    try:
        yield rt
    finally:
        rt.close()


class HitRecorder(http.server.ThreadingHTTPServer):
    """A loopback HTTP server that counts the requests it gets (the 'remote' content)."""

    daemon_threads = True

    def __init__(self, port: int) -> None:
        self.hits: list[str] = []
        super().__init__(("127.0.0.1", port), _RecordingHandler)


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    # A 1x1 transparent GIF.
    PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00"
             b"\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

    def do_GET(self) -> None:  # noqa: N802
        assert isinstance(self.server, HitRecorder)
        self.server.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.send_header("Content-Length", str(len(self.PIXEL)))
        self.end_headers()
        self.wfile.write(self.PIXEL)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def remote_server(free_port: Callable[[], int]) -> Iterator[HitRecorder]:
    """A 'remote' web server on loopback that records every hit."""
    server = HitRecorder(free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
