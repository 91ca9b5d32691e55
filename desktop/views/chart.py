"""A live chart, drawn with QPainter: sign-up response times above, queue depth below.

Sign-up times use a logarithmic axis so that a 3 ms queued sign-up and a 2 s inline
one are both readable; points are coloured by delivery mode. Password hashing
(argon2, a few hundred ms at production cost) is the same in both modes and can
hide the difference the delivery mode makes: with `without_hashing` on, each
sign-up of this window is plotted at its time without hashing. Labels that do not
fit (a small window) are left out rather than drawn over each other. The chart keeps
the last few minutes.
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
        # (at, total ms, mode, ms spent hashing the password or None when not known)
        self.signups: deque[tuple[float, float, str, float | None]] = deque(maxlen=20000)
        self.depths: deque[tuple[float, int]] = deque(maxlen=5000)
        self.without_hashing = False
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(600, 220)

    def add_signup(self, elapsed_ms: float, mode: str, at: float | None = None,
                   hash_ms: float | None = None) -> None:
        """Record one sign-up's response time (mode: queue, sync or other)."""
        when = time.time() if at is None else at
        self.signups.append((when, max(0.01, elapsed_ms), mode, hash_ms))
        self.update()

    def add_depth(self, depth: int, at: float | None = None) -> None:
        """Record the queue depth now."""
        self.depths.append((time.time() if at is None else at, max(0, depth)))
        self.update()

    def set_without_hashing(self, on: bool) -> None:
        """Plot each sign-up at its time without password hashing (where it is known)."""
        self.without_hashing = on
        self.update()

    def plotted_signups(self, since: float = 0.0) -> list[tuple[float, float, str]]:
        """The (at, ms, mode) points drawn, after `since`: totals, or times without hashing."""
        points = []
        for t, ms, mode, hash_ms in self.signups:
            if t < since:
                continue
            if self.without_hashing:
                if hash_ms is None:
                    continue  # another process's sign-up: only its total is known
                ms = max(0.01, ms - hash_ms)
            points.append((t, ms, mode))
        return points

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
        line = fm.height()
        left = fm.horizontalAdvance("10000 ms") + 10
        right, top, gap, bottom = 12, line + 6, line + 14, line + 6
        h = self.height() - top - gap - bottom
        upper = QRectF(left, top, self.width() - left - right, h * 0.62)
        lower = QRectF(left, upper.bottom() + gap, upper.width(), h * 0.38)
        now = time.time()
        t0 = now - self.window_seconds
        right_align = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        def x_of(t: float) -> float:
            return upper.left() + (t - t0) / self.window_seconds * upper.width()

        # Title and legend: legend entries that do not fit the width are left out.
        title = ("Sign-up response time without password hashing" if self.without_hashing
                 else "Sign-up response time")
        p.setPen(text)
        p.drawText(QPointF(left, fm.ascent() + 2), title)
        lx = left + fm.horizontalAdvance(title) + 20
        for mode in ("queue", "sync", "other"):
            label = MODE_LABELS[mode]
            if lx + 12 + fm.horizontalAdvance(label) > self.width() - right:
                break
            p.setBrush(QColor(MODE_COLORS[mode]))
            p.setPen(Qt.PenStyle.NoPen)
            p.drawEllipse(QPointF(lx + 4, fm.ascent() / 2 + 3), 4, 4)
            p.setPen(text)
            p.drawText(QPointF(lx + 12, fm.ascent() + 2), label)
            lx += fm.horizontalAdvance(label) + 30
        if lower.height() >= line:
            p.drawText(QPointF(left, lower.top() - 5), "Queue depth (emails waiting)")

        # Upper: log axis from 0.1 ms to the largest value seen (at least 10 s).
        points = self.plotted_signups(t0)
        top_ms = max([10000.0] + [ms for _, ms, _ in points])
        lo, hi = math.log10(0.1), math.log10(top_ms)

        def y_of(ms: float) -> float:
            v = (math.log10(max(ms, 0.1)) - lo) / (hi - lo)
            return upper.bottom() - v * upper.height()

        grid_pen = QPen(grid, 1)
        decades = ((1, "1 ms"), (10, "10 ms"), (100, "100 ms"), (1000, "1 s"), (10000, "10 s"))
        # Every decade gets a grid line; labels only as often as they fit the height.
        spacing = abs(y_of(1) - y_of(10))
        step = 1 if spacing >= line else 2 if 2 * spacing >= line else 4
        for n, (decade, label) in enumerate(decades):
            y = y_of(decade)
            p.setPen(grid_pen)
            p.drawLine(QPointF(upper.left(), y), QPointF(upper.right(), y))
            if n % step == 0 and upper.top() - line / 2 <= y:
                p.setPen(text)
                p.drawText(QRectF(0, y - line / 2, left - 6, line), right_align, label)
        p.setPen(Qt.PenStyle.NoPen)
        for mode in MODE_COLORS:
            p.setBrush(QColor(MODE_COLORS[mode]))
            for t, ms, m in points:
                if m == mode or (mode == "other" and m not in MODE_COLORS):
                    p.drawEllipse(QPointF(x_of(t), y_of(ms)), 3, 3)

        # Lower: queue depth as a step line.
        depths = [(t, d) for t, d in self.depths if t >= t0]
        top_depth = max([10] + [d for _, d in depths])
        p.setPen(grid_pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(lower)
        p.setPen(text)
        if lower.height() >= 2 * line:
            p.drawText(QRectF(0, lower.top() - line / 2, left - 6, line), right_align,
                       str(top_depth))
        p.drawText(QRectF(0, lower.bottom() - line / 2, left - 6, line), right_align, "0")
        if depths:
            p.setPen(QPen(QColor(MODE_COLORS["other"]), 2))
            prev: QPointF | None = None
            for t, d in depths:
                pt = QPointF(x_of(t), lower.bottom() - d / top_depth * lower.height())
                if prev is not None:
                    p.drawLine(prev, QPointF(pt.x(), prev.y()))
                    p.drawLine(QPointF(pt.x(), prev.y()), pt)
                prev = pt
            if prev is not None:
                p.drawLine(prev, QPointF(upper.right(), prev.y()))
        # Time axis, right to left from "now"; a label that would touch the one drawn
        # before it is left out.
        p.setPen(text)
        last_left = math.inf
        for minutes in range(int(self.window_seconds // 60) + 1):
            x = x_of(now - minutes * 60)
            label = "now" if minutes == 0 else f"-{minutes} min"
            w = fm.horizontalAdvance(label)
            x_left = max(0.0, min(x - w / 2, upper.right() - w))
            if x_left + w + fm.horizontalAdvance("  ") > last_left:
                continue
            p.drawText(QPointF(x_left, lower.bottom() + fm.ascent() + 3), label)
            last_left = x_left
