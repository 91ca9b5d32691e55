"""A read-only table model over a list of frozen read objects, updated in place.

`set_rows` compares the new rows with the old by key: unchanged lists cost nothing,
changed rows emit dataChanged, rows added on top (and as many dropped at the bottom
of a limited list) or at the end are inserted and removed (so the view keeps its
selection and scroll position); anything else resets the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt

R = TypeVar("R")

Index = QModelIndex | QPersistentModelIndex

DISPLAY = Qt.ItemDataRole.DisplayRole
TOOLTIP = Qt.ItemDataRole.ToolTipRole
FOREGROUND = Qt.ItemDataRole.ForegroundRole
FONT = Qt.ItemDataRole.FontRole
ALIGN = Qt.ItemDataRole.TextAlignmentRole
USER = Qt.ItemDataRole.UserRole


class RowsModel(QAbstractTableModel, Generic[R]):
    """Rows of one kind; subclasses name HEADERS and say how a cell looks."""

    HEADERS: tuple[str, ...] = ()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[R] = []

    # What subclasses say ---------------------------------------------------------------
    def key(self, row: R) -> object:
        """The identity of a row (its id)."""
        return getattr(row, "id")  # noqa: B009 - rows are any read object with an id

    def display(self, row: R, column: int) -> str:
        """The text of one cell."""
        raise NotImplementedError

    def cell_data(self, row: R, column: int, role: int) -> Any:
        """Other roles (tooltip, colour, font); None by default."""
        return None

    # Public API ------------------------------------------------------------------------
    @property
    def rows(self) -> list[R]:
        """The rows, in display order (a copy)."""
        return list(self._rows)

    def row_at(self, row: int) -> R | None:
        """The read object shown in row `row`, or None."""
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, key: object) -> int | None:
        """The row number showing the object with this key, or None."""
        for i, r in enumerate(self._rows):
            if self.key(r) == key:
                return i
        return None

    def set_rows(self, rows: Sequence[R]) -> None:
        """Show these rows, touching only what changed."""
        new = list(rows)
        old_keys = [self.key(r) for r in self._rows]
        new_keys = [self.key(r) for r in new]
        if new_keys == old_keys:
            self._replace_changed(new)
            return
        top = new_keys.index(old_keys[0]) if old_keys and old_keys[0] in new_keys else -1
        kept = len(new_keys) - top
        if top > 0 and new_keys[top:] == old_keys[:kept]:
            # Rows added on top (newest first), maybe as many dropped at the bottom (limit).
            if kept < len(old_keys):
                self.beginRemoveRows(QModelIndex(), kept, len(old_keys) - 1)
                self._rows = self._rows[:kept]
                self.endRemoveRows()
            self.beginInsertRows(QModelIndex(), 0, top - 1)
            self._rows = new[:top] + self._rows
            self.endInsertRows()
            self._replace_changed(new)
        elif len(new_keys) > len(old_keys) and new_keys[: len(old_keys)] == old_keys:
            start = len(self._rows)
            self.beginInsertRows(QModelIndex(), start, len(new) - 1)
            self._rows = self._rows + new[start:]
            self.endInsertRows()
            self._replace_changed(new)
        else:
            self.beginResetModel()
            self._rows = new
            self.endResetModel()

    def _replace_changed(self, new: list[R]) -> None:
        changed = [i for i in range(len(new)) if self._rows[i] != new[i]]
        self._rows = new
        if changed:
            last_col = max(0, self.columnCount() - 1)
            self.dataChanged.emit(self.index(changed[0], 0), self.index(changed[-1], last_col))

    # Qt overrides ----------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(self, index: Index, role: int = DISPLAY) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        if role == DISPLAY:
            return self.display(row, index.column())
        if role == USER:
            return self.key(row)
        return self.cell_data(row, index.column(), role)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = DISPLAY
    ) -> Any:
        if role != DISPLAY:
            return None
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(self.HEADERS):
            return self.HEADERS[section]
        return None
