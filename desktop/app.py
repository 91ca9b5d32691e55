"""Start-up and shutdown of the window: QApplication, the Runtime, signals, exit code.

`desktop.cli` calls `display_available()` and then `run_gui(...)`. The Runtime's
start is fast (it starts threads); the window then reads everything off the GUI
thread. Ctrl-C and SIGTERM quit the event loop cleanly: Python only runs signal
handlers between bytecodes, so a QTimer wakes the interpreter a few times a second.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from types import FrameType

from core.settings import Settings

WAKE_UP_MS = 200

# References added to None, True and False on Python < 3.12: at the worst rate seen
# (a few thousand lost per second) they would last for centuries.
SINGLETON_HEADROOM = 1 << 40
_singletons_pinned = False


def display_available() -> bool:
    """True if a window can be shown (a display server, or an explicit Qt platform)."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def pin_singletons() -> bool:
    """Make None, True and False immortal on CPython < 3.12, as 3.12 does (PEP 683).

    PySide6 6.12.0 (its abi3 wheels, run on Python 3.11) drops one reference to None
    on every call of a method returning void (`painter.drawLine`, `widget.update`,
    `label.setText`, ...) and one to True on every `Signal.emit`. None starts with
    about 5,000 references, so after enough paints and task results its count reaches
    zero and the interpreter aborts (`Fatal Python error: none_dealloc`). No call
    pattern avoids it: every void call leaks. Adding a huge number of references once
    makes the lost ones harmless; these objects are never freed anyway. Returns True
    if it pinned them now (once per process; never on 3.12+, where they are immortal).
    """
    global _singletons_pinned
    if _singletons_pinned or sys.version_info >= (3, 12):
        return False
    if sys.implementation.name != "cpython":
        return False
    for obj in (None, True, False):
        # ob_refcnt is the first field of every object in CPython 3.11 and earlier.
        ctypes.c_ssize_t.from_address(id(obj)).value += SINGLETON_HEADROOM
    _singletons_pinned = True
    return True


def prepare_qt() -> None:
    """What must happen before the QApplication exists: WebEngine import and URL schemes.

    It also pins None, True and False (see `pin_singletons`): without that, PySide6
    6.12.0 on Python 3.11 crashes the window after a minute or two of painting.
    """
    pin_singletons()
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
