"""Change signals for the window: polls the stores' cheap change watchers with a QTimer.

core and mailcatcher each offer `change_watcher()`, an object whose `changed()` says
whether any process has written to that database since the last call (SQLite's
`PRAGMA data_version`). The window refreshes only what changed.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import QObject, QTimer, Signal, SignalInstance, Slot

POLL_INTERVAL_MS = 250


class ChangeSource(Protocol):
    """What `Engine.change_watcher()` and `MessageStore.change_watcher()` return."""

    def changed(self) -> bool: ...

    def close(self) -> None: ...


class ChangeWatcher(QObject):
    """Emits `app_changed` / `mail_changed` within one poll interval of a write anywhere."""

    app_changed = Signal()
    mail_changed = Signal()
    error = Signal(object)

    def __init__(
        self,
        app_source: ChangeSource,
        mail_source: ChangeSource,
        parent: QObject | None = None,
        interval_ms: int = POLL_INTERVAL_MS,
    ) -> None:
        super().__init__(parent)
        self._sources: list[tuple[ChangeSource, SignalInstance]] = [
            (app_source, self.app_changed),
            (mail_source, self.mail_changed),
        ]
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.on_poll)

    def start(self) -> None:
        """Begin polling."""
        self._timer.start()

    def stop(self) -> None:
        """Stop polling and close the sources."""
        self._timer.stop()
        for source, _ in self._sources:
            source.close()
        self._sources = []

    @Slot()
    def on_poll(self) -> None:
        for source, signal in self._sources:
            try:
                changed = source.changed()
            except Exception as exc:  # noqa: BLE001 - a locked database must not stop the timer
                self.error.emit(exc)
                continue
            if changed:
                signal.emit()
