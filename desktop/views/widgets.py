"""Small widget helpers shared by the panels: plain-text labels and table set-up."""

from __future__ import annotations

from PySide6.QtCore import QAbstractItemModel, QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QTableView,
    QWidget,
)


def plain_label(text: str = "", parent: QWidget | None = None) -> QLabel:
    """A QLabel that never interprets its text as markup (captured mail is untrusted)."""
    label = QLabel(parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class ElidedLabel(QLabel):
    """One line of plain text that shrinks with its space, ending in "…" (full text as tooltip).

    A plain QLabel's minimum width is its whole text: in a status bar a longer count
    would widen the window, and a narrow window would cut the bar off.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802
        """Show text (elided when it does not fit); the tooltip holds all of it."""
        super().setText(text)
        self.setToolTip(text)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        fm = self.fontMetrics()
        return QSize(fm.horizontalAdvance("…") * 6, super().minimumSizeHint().height())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        try:
            rect = self.contentsRect()
            elided = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight,
                                                   rect.width())
            painter.setPen(self.palette().windowText().color())
            painter.drawText(rect, int(Qt.AlignmentFlag.AlignLeft
                                       | Qt.AlignmentFlag.AlignVCenter), elided)
        finally:
            painter.end()

    def is_elided(self) -> bool:
        """True while the text is shown cut."""
        return self.fontMetrics().horizontalAdvance(self.text()) > self.contentsRect().width()


class ResultLine(QLineEdit):
    """A read-only, frameless, selectable line for an answer (e.g. a generated password).

    Unlike a QLabel it never asks for its text's width (the window never grows to fit
    a long answer) and the text can be selected and copied; it shows the beginning of
    the text, all of it in the tooltip.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFrame(False)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setStyleSheet("")

    def setText(self, text: str | None) -> None:  # noqa: N802
        """Show text from its beginning."""
        text = text or ""
        super().setText(text)
        self.setCursorPosition(0)
        self.setToolTip(text)

    def setStyleSheet(self, sheet: str) -> None:  # noqa: N802
        """A style (e.g. a colour) on top of the transparent background."""
        super().setStyleSheet(f"QLineEdit {{ background: transparent; {sheet.rstrip(';')} }}"
                              if sheet else "QLineEdit { background: transparent; }")


def make_table(
    model: QAbstractItemModel,
    parent: QWidget | None = None,
    *,
    stretch_column: int | None = None,
    multi_select: bool = False,
    object_name: str = "",
) -> QTableView:
    """A read-only, row-selecting table over model, with compact rows."""
    view = QTableView(parent)
    view.setObjectName(object_name)
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(
        QAbstractItemView.SelectionMode.ExtendedSelection
        if multi_select
        else QAbstractItemView.SelectionMode.SingleSelection
    )
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.setShowGrid(False)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 8)
    view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    header = view.horizontalHeader()
    header.setHighlightSections(False)
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    if stretch_column is not None:
        header.setSectionResizeMode(stretch_column, QHeaderView.ResizeMode.Stretch)
    else:
        header.setStretchLastSection(True)
    return view


def set_column_widths(view: QTableView, widths: dict[int, int]) -> None:
    """Give columns a starting width in characters of the view's font."""
    char = view.fontMetrics().horizontalAdvance("0")
    for column, chars in widths.items():
        view.setColumnWidth(column, chars * char + 16)
