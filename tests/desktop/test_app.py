"""Start-up and shutdown of the window process: display check, Ctrl-C/SIGTERM, clean exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.engine import DEFAULT_WORKERS, Engine
from core.settings import Settings
from desktop import app
from desktop.runtime import WINDOW_WORKERS
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_display_available_needs_a_display_or_a_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without DISPLAY, WAYLAND_DISPLAY or QT_QPA_PLATFORM (on Linux) there is no display."""
    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert app.display_available() is False
    monkeypatch.setenv("DISPLAY", ":99")
    assert app.display_available() is True
    monkeypatch.delenv("DISPLAY")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert app.display_available() is True


def test_run_gui_without_a_display_says_so_and_suggests_serve(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    """run_gui with no display prints one line naming `mailroom serve` and returns non-zero."""
    monkeypatch.setattr(app, "display_available", lambda: False)
    code = app.run_gui(Settings(data_dir=data_dir), run_catcher=True, run_worker=True, workers=1)
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mailroom serve" in err[0]


def test_mailroom_without_a_display_says_so_in_one_line(data_dir: Path) -> None:
    """`mailroom` with no display exits non-zero with one line that suggests `mailroom serve`."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, "-m", "desktop.cli", "--data-dir", str(data_dir)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "mailroom serve" in lines[0], result.stderr


def _wait_port(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_window_process_stops_cleanly_on_a_signal(
    signum: int, data_dir: Path, free_port: Callable[[], int]
) -> None:
    """`mailroom` (the window) quits on SIGTERM / Ctrl-C with exit code 0 and frees its ports."""
    smtp_port, http_port = free_port(), free_port()
    command = [sys.executable, "-m", "desktop.cli", "--data-dir", str(data_dir),
               "--smtp-port", str(smtp_port), "--http-port", str(http_port), "--workers", "1"]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QTWEBENGINE_DISABLE_SANDBOX="1")
    proc = subprocess.Popen(command, cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert _wait_port(http_port, time.monotonic() + 30), "the window never started"
        assert _wait_port(smtp_port, time.monotonic() + 5)
        # The signal may well arrive before the event loop runs: it must not be lost.
        started = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    for port in (smtp_port, http_port):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free again


@pytest.mark.parametrize(("command", "threads"), [
    ([], WINDOW_WORKERS),  # the window: worker threads share its interpreter lock
    (["serve"], DEFAULT_WORKERS),  # serve: its worker is a process of its own
])
def test_worker_threads_default_to_what_the_process_can_afford(
    command: list[str], threads: int, data_dir: Path, free_port: Callable[[], int]
) -> None:
    """Without --workers the window runs a few worker threads and serve's worker many."""
    smtp_port, http_port = free_port(), free_port()
    argv = [sys.executable, "-m", "desktop.cli", *command, "--data-dir", str(data_dir),
            "--smtp-port", str(smtp_port), "--http-port", str(http_port)]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QTWEBENGINE_DISABLE_SANDBOX="1")
    proc = subprocess.Popen(argv, cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    engine = Engine(Settings(data_dir=data_dir, smtp_port=smtp_port, http_port=http_port))
    try:
        wait_until(lambda: engine.queue_stats().workers_alive > 0, 60, "a worker to beat")
        assert engine.queue_stats().worker_threads == threads
    finally:
        engine.close()
        proc.terminate()
        proc.communicate(timeout=30)
