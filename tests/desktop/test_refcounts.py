"""The window's hot paths cannot run None (or True) down to zero references.

PySide6 6.12.0 on Python 3.11 drops a reference to None on every void method call
and one to True on every signal emit; `desktop.app.pin_singletons` (run by
`prepare_qt`, which conftest calls) makes that harmless. These tests measure what one
chart paint and one task completion cost and require the headroom to outlast days of
them, so they fail when the guard is missing and the binding leaks.
"""

from __future__ import annotations

import sys
from typing import Any

from PySide6.QtGui import QImage, QPainter

from desktop.tasks import Refresher, TaskRunner
from desktop.views.chart import LiveChart

# Four days of painting at 30 frames a second; four days of 100 task results a second.
PAINTS_REQUIRED = 10_000_000
COMPLETIONS_REQUIRED = 35_000_000


def _drift(obj: object, before: int) -> int:
    """References lost since `before` (0 when the count stayed or grew)."""
    return max(0, before - sys.getrefcount(obj))


def test_chart_paints_cannot_exhaust_none(qtbot: Any) -> None:
    """After the references one paint loses, days of paints still leave None alive."""
    chart = LiveChart()
    qtbot.addWidget(chart)
    chart.resize(800, 300)
    for i in range(200):
        chart.add_signup(2.0 + i, ("queue", "sync", "other")[i % 3])
        chart.add_depth(i % 7)
    image = QImage(800, 300, QImage.Format.Format_ARGB32)

    def paint() -> None:
        painter = QPainter(image)
        try:
            chart._paint(painter)
        finally:
            painter.end()

    paint()
    before = sys.getrefcount(None)
    paint()
    per_paint = _drift(None, before)
    assert sys.getrefcount(None) > per_paint * PAINTS_REQUIRED, (
        f"one paint loses {per_paint} references to None; "
        f"{sys.getrefcount(None)} left would not last {PAINTS_REQUIRED} paints"
    )
    for _ in range(300):  # and the real thing, many times over, survives
        paint()
    chart.repaint()


def test_task_completions_cannot_exhaust_none_or_true(qtbot: Any) -> None:
    """After what one Refresher completion loses, days of completions leave None and True alive."""
    chart = LiveChart()
    qtbot.addWidget(chart)
    runner = TaskRunner()
    applied: list[int] = []

    def apply(depth: object) -> None:
        assert isinstance(depth, int)
        chart.add_depth(depth)
        applied.append(depth)

    refresher = Refresher(runner, lambda: (lambda: len(applied)), apply)
    try:
        refresher.request()
        qtbot.waitUntil(lambda: len(applied) == 1 and not refresher.busy, timeout=5000)
        before_none, before_true = sys.getrefcount(None), sys.getrefcount(True)
        rounds = 20
        for n in range(2, rounds + 2):
            refresher.request()
            qtbot.waitUntil(lambda n=n: len(applied) == n and not refresher.busy, timeout=5000)
        per_none = _drift(None, before_none) / rounds
        per_true = _drift(True, before_true) / rounds
        for obj, per in ((None, per_none), (True, per_true)):
            assert sys.getrefcount(obj) > per * COMPLETIONS_REQUIRED, (
                f"one completion loses {per} references to {obj}; "
                f"{sys.getrefcount(obj)} left would not last {COMPLETIONS_REQUIRED}"
            )
    finally:
        assert runner.shutdown(5000)
