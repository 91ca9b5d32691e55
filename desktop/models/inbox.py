"""The Inbox list: captured messages, newest first, fetched in pages on demand.

The model knows how many messages match (one COUNT) and keeps a small cache of
pages of `PAGE_SIZE` rows. A row whose page is not cached shows a placeholder and
asks for its page on the thread pool; when the page arrives the rows are updated.
So a store of 100,000 messages costs one count and the pages actually looked at.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont

from desktop.models.base import DISPLAY, FONT, FOREGROUND, TOOLTIP, USER, Index
from desktop.models.format import fmt_full_time, fmt_list, fmt_size, fmt_time, one_line
from desktop.tasks import Refresher, TaskRunner

PAGE_SIZE = 200
MAX_PAGES = 60


class MessageSource(Protocol):
    """The part of `mailcatcher.store.MessageStore` the inbox list reads."""

    def list_messages(
        self, limit: int = 50, offset: int = 0, search: str | None = None
    ) -> list[Any]: ...

    def count_messages(self, search: str | None = None) -> int: ...


class InboxModel(QAbstractTableModel):
    """Rows are mailcatcher `MessageSummary`s, in pages fetched off the GUI thread."""

    refreshed = Signal()  # the count and first page have been (re)loaded
    page_loaded = Signal(int)

    COL_RECEIVED, COL_FROM, COL_TO, COL_SUBJECT, COL_SIZE, COL_ATTACHMENTS, COL_NOTE = range(7)
    HEADERS = ("Received", "From", "To", "Subject", "Size", "Att.", "Note")

    def __init__(
        self, source: MessageSource, runner: TaskRunner, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._source = source
        self._runner = runner
        self._search: str | None = None
        self._shown_search: str | None = None
        self._count = 0
        self._pages: OrderedDict[int, list[Any]] = OrderedDict()
        self._requested: set[int] = set()
        self._generation = 0
        self._loaded_once = False
        self._refresher = Refresher(runner, self._make_refresh_job, self._apply_refresh)

    # Public API ------------------------------------------------------------------------
    @property
    def search(self) -> str | None:
        """The search text the list is filtered by (None: all messages)."""
        return self._search

    @property
    def total(self) -> int:
        """How many messages match the current search."""
        return self._count

    @property
    def loaded_once(self) -> bool:
        """True after the first count and page have arrived."""
        return self._loaded_once

    @property
    def busy(self) -> bool:
        """True while a refresh is running or due."""
        return self._refresher.busy

    def set_search(self, text: str | None) -> None:
        """Filter by full-text search (empty: all); the list reloads off the GUI thread."""
        text = (text or "").strip() or None
        if text == self._search:
            return
        self._search = text
        self.refresh()

    def refresh(self) -> None:
        """Reload the count and the first page (after a change in the store)."""
        self._refresher.request()

    def message_at(self, row: int) -> Any | None:
        """The summary shown in `row`, if its page is loaded."""
        page = self._pages.get(row // PAGE_SIZE)
        if page is None:
            return None
        i = row % PAGE_SIZE
        return page[i] if i < len(page) else None

    def row_of(self, message_id: int) -> int | None:
        """The row of a message among the loaded pages, or None."""
        for number, page in self._pages.items():
            for i, summary in enumerate(page):
                if summary.id == message_id:
                    return number * PAGE_SIZE + i
        return None

    def update_message(self, summary: Any) -> None:
        """Show a changed summary (read flag) at once, without waiting for a refresh."""
        row = self.row_of(summary.id)
        if row is None:
            return
        self._pages[row // PAGE_SIZE][row % PAGE_SIZE] = summary
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.HEADERS) - 1))

    # Loading ---------------------------------------------------------------------------
    def _make_refresh_job(self) -> Any:
        source, search = self._source, self._search

        def job() -> tuple[str | None, int, list[Any]]:
            count = source.count_messages(search=search)
            first = source.list_messages(limit=PAGE_SIZE, offset=0, search=search)
            return search, count, first

        return job

    def _apply_refresh(self, result: tuple[str | None, int, list[Any]]) -> None:
        search, count, first = result
        if search != self._search:
            return  # the search changed meanwhile; a newer refresh is on its way
        old_count = self._count
        old_top = self._pages.get(0, [None])[0] if self._pages.get(0) else None
        new_ids = [m.id for m in first]
        shift = new_ids.index(old_top.id) if old_top is not None and old_top.id in new_ids else -1
        same_search = search == self._shown_search and self._loaded_once
        self._generation += 1
        self._requested.clear()
        if same_search and shift > 0 and count - old_count == shift:
            # New mail on top: insert rows so that the view keeps selection and position.
            self.beginInsertRows(QModelIndex(), 0, shift - 1)
            self._count = count
            self._pages = OrderedDict({0: first})
            self.endInsertRows()
            self._emit_all_changed()
        elif same_search and shift == 0 and count == old_count:
            self._pages = OrderedDict({0: first})
            self._emit_all_changed()
        else:
            self.beginResetModel()
            self._count = count
            self._pages = OrderedDict({0: first})
            self._shown_search = search
            self.endResetModel()
        self._loaded_once = True
        self.refreshed.emit()

    def _emit_all_changed(self) -> None:
        if self._count:
            last = self.index(self._count - 1, len(self.HEADERS) - 1)
            self.dataChanged.emit(self.index(0, 0), last)

    def _request_page(self, number: int) -> None:
        if number in self._requested:
            return
        self._requested.add(number)
        source, search, generation = self._source, self._search, self._generation

        def job() -> list[Any]:
            return source.list_messages(limit=PAGE_SIZE, offset=number * PAGE_SIZE, search=search)

        self._runner.submit(job, lambda rows: self._on_page(generation, number, rows))

    def _on_page(self, generation: int, number: int, rows: list[Any]) -> None:
        if generation != self._generation:
            return
        self._pages[number] = rows
        self._pages.move_to_end(number)
        while len(self._pages) > MAX_PAGES:
            dropped, _ = self._pages.popitem(last=False)
            self._requested.discard(dropped)
        first = number * PAGE_SIZE
        last = min(self._count, first + PAGE_SIZE) - 1
        if last >= first:
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(self.HEADERS) - 1))
        self.page_loaded.emit(number)

    # Qt overrides ----------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else self._count

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(self, index: Index, role: int = DISPLAY) -> Any:
        if not index.isValid() or not 0 <= index.row() < self._count:
            return None
        number = index.row() // PAGE_SIZE
        page = self._pages.get(number)
        if page is None:
            self._request_page(number)
            if role == DISPLAY and index.column() == self.COL_SUBJECT:
                return "…"
            return None
        i = index.row() % PAGE_SIZE
        if i >= len(page):
            return None
        return self._cell(page[i], index.column(), role)

    def _cell(self, m: Any, column: int, role: int) -> Any:
        if role == DISPLAY:
            if column == self.COL_RECEIVED:
                return fmt_time(m.received_at)
            if column == self.COL_FROM:
                return one_line(m.from_ or m.mail_from, 200)
            if column == self.COL_TO:
                return one_line(m.to or fmt_list(m.rcpt_to), 200)
            if column == self.COL_SUBJECT:
                return one_line(m.subject, 300) or "(no subject)"
            if column == self.COL_SIZE:
                return fmt_size(m.size)
            if column == self.COL_ATTACHMENTS:
                return str(m.attachment_count) if m.attachment_count else ""
            if column == self.COL_NOTE:
                return self._note(m)
            return None
        if role == USER:
            return m.id
        if role == FONT and not m.read:
            font = QFont()
            font.setBold(True)
            return font
        if role == FOREGROUND and column == self.COL_NOTE and m.duplicate_of:
            return QColor("#e08a00")
        if role == TOOLTIP:
            if column == self.COL_RECEIVED:
                return fmt_full_time(m.received_at)
            if column == self.COL_NOTE:
                return one_line(fmt_list(m.notes), 2000) or None
            if column == self.COL_TO:
                return one_line(fmt_list(m.rcpt_to), 2000) or None
        return None

    @staticmethod
    def _note(m: Any) -> str:
        parts = []
        if m.duplicate_of:
            parts.append(f"duplicate of #{m.duplicate_of}")
        if m.notes:
            parts.append("parse notes")
        return ", ".join(parts)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = DISPLAY
    ) -> Any:
        if role == DISPLAY and orientation == Qt.Orientation.Horizontal:
            if 0 <= section < len(self.HEADERS):
                return self.HEADERS[section]
        return None
