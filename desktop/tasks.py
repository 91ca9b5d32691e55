"""Slow work off the GUI thread: a thread pool whose results come back as Qt signals.

Every call into core or mailcatcher that may touch a database runs here. The
callbacks given to `TaskRunner.submit` always run in the GUI thread (the runner's
own thread), so models and widgets are only ever touched there.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

Callback = Callable[[Any], None]


class _Job(QRunnable):
    """One callable; reports its result or exception through the runner's signals."""

    def __init__(self, runner: TaskRunner, task_id: int, fn: Callable[[], Any]) -> None:
        super().__init__()
        self._runner = runner
        self._task_id = task_id
        self._fn = fn

    def run(self) -> None:
        try:
            result = self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the GUI thread, not swallowed
            self._emit(self._runner.task_failed, exc)
        else:
            self._emit(self._runner.task_finished, result)

    def _emit(self, signal: Any, value: object) -> None:
        try:
            signal.emit(self._task_id, value)
        except RuntimeError:
            # The runner was destroyed while this job ran (window closing): nobody listens.
            pass


class TaskRunner(QObject):
    """Runs callables on a private QThreadPool; callbacks run in the runner's thread."""

    task_finished = Signal(int, object)
    task_failed = Signal(int, object)
    error = Signal(object)  # an exception that no submit() caller handled

    def __init__(self, parent: QObject | None = None, max_threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._ids = itertools.count(1)
        self._callbacks: dict[int, tuple[Callback | None, Callback | None]] = {}
        self._closed = False
        self.task_finished.connect(self.on_task_finished)
        self.task_failed.connect(self.on_task_failed)

    def submit(
        self,
        fn: Callable[[], Any],
        on_done: Callback | None = None,
        on_error: Callback | None = None,
    ) -> int:
        """Run fn() on the pool; on_done(result) or on_error(exc) later runs in this thread."""
        if self._closed:
            return 0
        task_id = next(self._ids)
        self._callbacks[task_id] = (on_done, on_error)
        self._pool.start(_Job(self, task_id, fn))
        return task_id

    @property
    def pending(self) -> int:
        """How many submitted tasks have not yet delivered their result."""
        return len(self._callbacks)

    def shutdown(self, timeout_ms: int = 15000) -> bool:
        """Drop queued jobs, wait for running ones, deliver nothing more; True if all ended."""
        self._closed = True
        self._pool.clear()
        done = self._pool.waitForDone(timeout_ms)
        self._callbacks.clear()
        return bool(done)

    @Slot(int, object)
    def on_task_finished(self, task_id: int, result: object) -> None:
        on_done, _ = self._callbacks.pop(task_id, (None, None))
        if on_done is not None and not self._closed:
            on_done(result)

    @Slot(int, object)
    def on_task_failed(self, task_id: int, exc: object) -> None:
        _, on_error = self._callbacks.pop(task_id, (None, None))
        if self._closed:
            return
        if on_error is not None:
            on_error(exc)
        else:
            self.error.emit(exc)


class Refresher:
    """At most one query of a kind in flight; requests arriving meanwhile coalesce into one.

    `make_job` is called in the GUI thread when the query starts (so it can read the
    current filter), and returns the callable that runs on the pool; `apply` gets its
    result in the GUI thread.
    """

    def __init__(
        self,
        runner: TaskRunner,
        make_job: Callable[[], Callable[[], Any]],
        apply: Callable[[Any], None],
    ) -> None:
        self._runner = runner
        self._make_job = make_job
        self._apply = apply
        self._busy = False
        self._again = False

    @property
    def busy(self) -> bool:
        """True while a query runs or another is due."""
        return self._busy or self._again

    def request(self) -> None:
        """Run the query now, or once more after the one in flight."""
        if self._busy:
            self._again = True
            return
        self._busy = True
        self._runner.submit(self._make_job(), self._done, self._failed)

    def _done(self, result: object) -> None:
        self._busy = False
        self._apply(result)
        self._next()

    def _failed(self, exc: object) -> None:
        self._busy = False
        self._runner.error.emit(exc)
        self._next()

    def _next(self) -> None:
        if self._again:
            self._again = False
            self.request()
