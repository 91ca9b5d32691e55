"""A live chart, drawn with QPainter: sign-up response times above, queue depth below.

Sign-up times use a logarithmic axis so that a 3 ms queued sign-up and a 2 s inline
one are both readable; points are coloured by delivery mode. The chart keeps the
last few minutes.
"""

from __future__ import annotations

import math
import time
from collections import deque

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

WINDOW_SECONDS = 180.0
MODE_COLORS = {"queue": "#2e9d4a", "sync": "#d9443f", "other": "#3a7fd5"}
MODE_LABELS = {"queue": "queued", "sync": "inline (sync)", "other": "other process"}


class LiveChart(QWidget):
    """Response time of each sign-up (log scale) and queue depth, over the last minutes."""

    def __init__(self, parent: QWidget | None = None, window_seconds: float = WINDOW_SECONDS):
        super().__init__(parent)
        self.window_seconds = window_seconds
        self.signups: deque[tuple[float, float, str]] = deque(maxlen=20000)
        self.depths: deque[tuple[float, int]] = deque(maxlen=5000)
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(600, 220)

    def add_signup(self, elapsed_ms: float, mode: str, at: float | None = None) -> None:
        """Record one sign-up's response time (mode: queue, sync or other)."""
        self.signups.append((time.time() if at is None else at, max(0.01, elapsed_ms), mode))
        self.update()

    def add_depth(self, depth: int, at: float | None = None) -> None:
        """Record the queue depth now."""
        self.depths.append((time.time() if at is None else at, max(0, depth)))
        self.update()

    # Drawing -----------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            self._paint(painter)
        finally:
            painter.end()

    def _paint(self, p: QPainter) -> None:
        pal = self.palette()
        text = pal.text().color()
        grid = QColor(text)
        grid.setAlpha(40)
        p.fillRect(self.rect(), pal.base())
        fm = self.fontMetrics()
        left = fm.horizontalAdvance("10000 ms") + 10
        right, top, gap, bottom = 12, fm.height() + 6, fm.height() + 14, fm.height() + 6
        h = self.height() - top - gap - bottom
        upper = QRectF(left, top, self.width() - left - right, h * 0.62)
        lower = QRectF(left, upper.bottom() + gap, upper.width(), h * 0.38)
        now = time.time()
        t0 = now - self.window_seconds

        def x_of(t: float) -> float:
            return upper.left() + (t - t0) / self.window_seconds * upper.width()

        # Titles and legend
        p.setPen(text)
        p.drawText(QPointF(left, fm.ascent() + 2), "Sign-up response time")
        lx = left + fm.horizontalAdvance("Sign-up response time") + 20
        for mode in ("queue", "sync", "other"):
            p.setBrush(QColor(MODE_COLORS[mode]))
            p.setPen(Qt.PenStyle.NoPen)
            p.drawEllipse(QPointF(lx + 4, fm.ascent() / 2 + 3), 4, 4)
            p.setPen(text)
            p.drawText(QPointF(lx + 12, fm.ascent() + 2), MODE_LABELS[mode])
            lx += fm.horizontalAdvance(MODE_LABELS[mode]) + 30
        p.drawText(QPointF(left, lower.top() - 5), "Queue depth (emails waiting)")

        # Upper: log axis from 1 ms to the largest value seen (at least 10 s).
        points = [(t, ms, m) for t, ms, m in self.signups if t >= t0]
        top_ms = max([10000.0] + [ms for _, ms, _ in points])
        lo, hi = math.log10(0.1), math.log10(top_ms)

        def y_of(ms: float) -> float:
            v = (math.log10(max(ms, 0.1)) - lo) / (hi - lo)
            return upper.bottom() - v * upper.height()

        p.setPen(QPen(grid, 1))
        for decade, label in ((1, "1 ms"), (10, "10 ms"), (100, "100 ms"), (1000, "1 s"),
                              (10000, "10 s")):
            y = y_of(decade)
            p.setPen(QPen(grid, 1))
            p.drawLine(QPointF(upper.left(), y), QPointF(upper.right(), y))
            p.setPen(text)
            p.drawText(QRectF(0, y - fm.height() / 2, left - 6, fm.height()),
                       int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), label)
        p.setPen(Qt.PenStyle.NoPen)
        for t, ms, mode in points:
            p.setBrush(QColor(MODE_COLORS.get(mode, MODE_COLORS["other"])))
            p.drawEllipse(QPointF(x_of(t), y_of(ms)), 3, 3)

        # Lower: queue depth as a step line.
        depths = [(t, d) for t, d in self.depths if t >= t0]
        top_depth = max([10] + [d for _, d in depths])
        p.setPen(QPen(grid, 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(lower)
        p.setPen(text)
        p.drawText(QRectF(0, lower.top() - fm.height() / 2, left - 6, fm.height()),
                   int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                   str(top_depth))
        p.drawText(QRectF(0, lower.bottom() - fm.height() / 2, left - 6, fm.height()),
                   int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), "0")
        if depths:
            pen = QPen(QColor(MODE_COLORS["other"]), 2)
            p.setPen(pen)
            prev: QPointF | None = None
            for t, d in depths:
                pt = QPointF(x_of(t), lower.bottom() - d / top_depth * lower.height())
                if prev is not None:
                    p.drawLine(prev, QPointF(pt.x(), prev.y()))
                    p.drawLine(QPointF(pt.x(), prev.y()), pt)
                prev = pt
            if prev is not None:
                p.drawLine(prev, QPointF(upper.right(), prev.y()))
        # Time axis
        p.setPen(text)
        for minutes in range(int(self.window_seconds // 60) + 1):
            x = x_of(now - minutes * 60)
            label = "now" if minutes == 0 else f"-{minutes} min"
            w = fm.horizontalAdvance(label)
            p.drawText(QPointF(min(x - w / 2, upper.right() - w), lower.bottom() + fm.ascent() + 3),
                       label)
