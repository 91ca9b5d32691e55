"""Start-up and shutdown of the window: QApplication, the Runtime, signals, exit code.

`desktop.cli` calls `display_available()` and then `run_gui(...)`. The Runtime's
start is fast (it starts threads); the window then reads everything off the GUI
thread. Ctrl-C and SIGTERM quit the event loop cleanly: Python only runs signal
handlers between bytecodes, so a QTimer wakes the interpreter a few times a second.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

from core.settings import Settings

WAKE_UP_MS = 200


def display_available() -> bool:
    """True if a window can be shown (a display server, or an explicit Qt platform)."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def prepare_qt() -> None:
    """What must happen before the QApplication exists: WebEngine import and URL schemes."""
    if os.name == "posix" and hasattr(os, "geteuid") and os.geteuid() == 0:
        # Chromium refuses its sandbox when run as root (containers, CI).
        os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
    from PySide6 import QtWebEngineWidgets  # noqa: F401 - must be loaded before QApplication

    from desktop.views.preview import register_url_schemes

    register_url_schemes()


class QuitOnSignal:
    """Ctrl-C and SIGTERM quit the Qt event loop, even when they arrive before it runs.

    Python runs signal handlers only between bytecodes, so a QTimer wakes the
    interpreter a few times a second; a signal that came before the event loop started
    is remembered (`requested`) and the timer's first tick inside the loop quits.
    """

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.signals: list[int] = []
        signal.signal(signal.SIGINT, self._handler)
        signal.signal(signal.SIGTERM, self._handler)
        self.timer = QTimer()
        self.timer.timeout.connect(self._wake_up)
        self.timer.start(WAKE_UP_MS)

    @property
    def requested(self) -> bool:
        """True once a quit signal arrived."""
        return bool(self.signals)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        from PySide6.QtCore import QCoreApplication

        self.signals.append(signum)
        QCoreApplication.quit()

    def _wake_up(self) -> None:
        if self.signals:
            from PySide6.QtCore import QCoreApplication

            QCoreApplication.quit()

    def close(self) -> None:
        """Stop the timer and give the signals back to Python's defaults."""
        self.timer.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_gui(settings: Settings, *, run_catcher: bool, run_worker: bool, workers: int) -> int:
    """Open the window over a freshly started Runtime; returns the exit code."""
    if not display_available():
        print("mailroom: no display found; run `mailroom serve` for the headless product",
              file=sys.stderr)
        return 2
    prepare_qt()
    import shiboken6
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication, QMessageBox

    from desktop.main_window import MainWindow
    from desktop.runtime import Runtime, StartupError

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Mailroom")
    app.setOrganizationName("Mailroom")
    app.setDesktopFileName("mailroom")
    QGuiApplication.setWindowIcon(QIcon.fromTheme("mail-message"))
    quit_on_signal = QuitOnSignal()  # before anything slow: a signal is never lost
    runtime = Runtime(settings, run_catcher=run_catcher, run_worker=run_worker, workers=workers)
    try:
        runtime.start()
    except StartupError as exc:
        runtime.close()
        quit_on_signal.close()
        print(f"mailroom: {exc}", file=sys.stderr)
        QMessageBox.critical(None, "Mailroom cannot start", str(exc))
        return 1
    window = MainWindow(runtime)
    app.aboutToQuit.connect(window.close)
    try:
        if not quit_on_signal.requested:
            window.show()
            code = app.exec()
        else:
            code = 0
    finally:
        window.close()
        window.shutdown()
        shiboken6.delete(window)  # before the app goes: pages must die before their profile
        runtime.close()
        quit_on_signal.close()
    return int(code)
