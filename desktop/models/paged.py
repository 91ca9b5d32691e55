"""A table model over a long, newest-first list, fetched in pages on the thread pool.

The model knows how many rows match its query (one count) and keeps a small cache of
pages of `PAGE_SIZE` rows. A row whose page is not cached shows a placeholder and
asks for its page; when the page arrives the rows are updated. So a list of 100,000
rows costs one count and the pages actually looked at.

`refresh()` reloads the first page and the count. When rows were only added on top
(newest first), they are inserted, so that a view keeps its selection and scroll
position; other changes (a row's state) update the cells in place; anything else
(a different query, deletions) resets the model.

Rows are newest first by key (an id that only grows). A refresh notes the key of its
newest row; its count and every page fetched until the next refresh leave out newer
rows, so that a page fetched while mail streams in still holds the rows the model
expects at those positions (with plain offsets each new message would push every
later page one row down, showing a row twice and skipping another).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, Signal

from desktop.models.base import DISPLAY, USER, Index
from desktop.tasks import Refresher, TaskRunner

PAGE_SIZE = 200
MAX_PAGES = 60
# Pages asked for but not fetched yet; older wishes are dropped (when the scrollbar is
# dragged, the rows passed over are no longer on screen; a repaint asks again if needed).
MAX_WANTED = 8


class PagedTableModel(QAbstractTableModel):
    """Subclasses say how to count and fetch (on the pool) and how a cell looks."""

    refreshed = Signal()  # the count and first page have been (re)loaded
    page_loaded = Signal(int)

    HEADERS: tuple[str, ...] = ()
    PLACEHOLDER_COLUMN = 0

    def __init__(self, runner: TaskRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self._query: Any = None
        self._shown_query: Any = None
        self._upto: int | None = None  # the newest key of the last refresh's snapshot
        self._count = 0
        self._pages: OrderedDict[int, list[Any]] = OrderedDict()
        self._wanted: list[int] = []  # most recent last
        self._fetching: int | None = None  # the page being fetched (one at a time)
        self._generation = 0
        self._loaded_once = False
        self._refresher = Refresher(runner, self._make_refresh_job, self._apply_refresh)

    # What subclasses say ----------------------------------------------------------------
    def fetch_count(self, query: Any, upto: int | None) -> int:
        """How many rows match query, leaving out keys above upto (runs on the pool)."""
        raise NotImplementedError

    def fetch_page(self, query: Any, offset: int, limit: int, upto: int | None) -> list[Any]:
        """Rows offset..offset+limit of query, newest first, leaving out keys above
        upto (None: no bound); runs on the pool."""
        raise NotImplementedError

    def cell(self, row: Any, column: int, role: int) -> Any:
        """What one cell shows for a role: display() for text, cell_data() for the rest."""
        if role == DISPLAY:
            return self.display(row, column)
        return self.cell_data(row, column, role)

    def display(self, row: Any, column: int) -> str:
        """The text of one cell."""
        raise NotImplementedError

    def cell_data(self, row: Any, column: int, role: int) -> Any:
        """Other roles (tooltip, colour, alignment); None by default."""
        return None

    def key(self, row: Any) -> object:
        """The identity of a row."""
        return row.id

    # Public API ---------------------------------------------------------------------------
    @property
    def query(self) -> Any:
        """What the list is filtered by (None: everything)."""
        return self._query

    @property
    def total(self) -> int:
        """How many rows match the query (as of the last refresh)."""
        return self._count

    @property
    def loaded_once(self) -> bool:
        """True after the first count and page have arrived."""
        return self._loaded_once

    @property
    def busy(self) -> bool:
        """True while a refresh is running or due."""
        return self._refresher.busy

    def set_query(self, query: Any) -> None:
        """Filter the list; it reloads off the GUI thread."""
        if query == self._query:
            return
        self._query = query
        self.refresh()

    def refresh(self) -> None:
        """Reload the count and the first page (after a change in the store)."""
        self._refresher.request()

    def first_page(self) -> list[Any]:
        """The newest rows, as loaded by the last refresh."""
        return list(self._pages.get(0, []))

    def row_at(self, row: int) -> Any | None:
        """The read object shown in `row`, if its page is loaded."""
        page = self._pages.get(row // PAGE_SIZE)
        if page is None:
            return None
        i = row % PAGE_SIZE
        return page[i] if i < len(page) else None

    def row_of(self, key: object) -> int | None:
        """The row showing the object with this key, among the loaded pages."""
        for number, page in self._pages.items():
            for i, item in enumerate(page):
                if item is not None and self.key(item) == key:
                    return number * PAGE_SIZE + i
        return None

    def update_row(self, item: Any) -> None:
        """Show a changed object at once, without waiting for a refresh."""
        row = self.row_of(self.key(item))
        if row is None:
            return
        self._pages[row // PAGE_SIZE][row % PAGE_SIZE] = item
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.HEADERS) - 1))

    # Loading -------------------------------------------------------------------------------
    def _make_refresh_job(self) -> Callable[[], tuple[Any, int, list[Any]]]:
        query = self._query

        def job() -> tuple[Any, int, list[Any]]:
            first = self.fetch_page(query, 0, PAGE_SIZE, None)
            if not first:
                return query, 0, first
            return query, self.fetch_count(query, self._bound(first[0])), first

        return job

    def _bound(self, row: Any) -> int:
        key = self.key(row)
        assert isinstance(key, int), "paged rows are keyed by a growing integer id"
        return key

    def _apply_refresh(self, result: tuple[Any, int, list[Any]]) -> None:
        query, count, first = result
        if query != self._query:
            return  # the query changed meanwhile; a newer refresh is on its way
        self._upto = self._bound(first[0]) if first else None
        old_count = self._count
        old_first = self._pages.get(0) or []
        new_keys = [self.key(r) for r in first]
        old_top = self.key(old_first[0]) if old_first else None
        shift = new_keys.index(old_top) if old_top is not None and old_top in new_keys else -1
        same_query = query == self._shown_query and self._loaded_once
        self._generation += 1
        self._wanted.clear()
        self._fetching = None
        if same_query and shift > 0 and count - old_count == shift:
            # New rows on top: insert them so that the view keeps selection and position.
            self.beginInsertRows(QModelIndex(), 0, shift - 1)
            self._count = count
            self._pages = self._shifted_pages(shift, first)
            self.endInsertRows()
            self._emit_all_changed()
            self._refetch_kept_pages()
        elif same_query and shift == 0 and count == old_count:
            self._pages = self._shifted_pages(0, first)
            self._emit_all_changed()
            self._refetch_kept_pages()
        else:
            self.beginResetModel()
            self._count = count
            self._pages = OrderedDict({0: first})
            self._shown_query = query
            self.endResetModel()
        self._loaded_once = True
        self.refreshed.emit()

    def _shifted_pages(self, shift: int, first: list[Any]) -> OrderedDict[int, list[Any]]:
        """The cached rows moved down by `shift`, re-cut into pages (None where a row is unknown).

        Rows on screen stay on screen (no placeholder flashes while mail streams in); they
        may be a little stale, so the most recently used pages are fetched again.
        """
        rows: dict[int, Any] = {}
        for number, page in self._pages.items():
            for i, item in enumerate(page):
                if item is not None:
                    rows[number * PAGE_SIZE + i + shift] = item
        for i, item in enumerate(first):
            rows[i] = item
        pages: OrderedDict[int, list[Any]] = OrderedDict()
        for number in sorted({r // PAGE_SIZE for r in rows} - {0}, key=self._recency(shift)):
            start, end = number * PAGE_SIZE, min((number + 1) * PAGE_SIZE, self._count)
            if start < end:
                pages[number] = [rows.get(r) for r in range(start, end)]
        pages[0] = first
        return pages

    def _recency(self, shift: int) -> Callable[[int], int]:
        order = {number: rank for rank, number in enumerate(self._pages)}

        def rank(number: int) -> int:  # the old page that holds most of this new page's rows
            return order.get((number * PAGE_SIZE - shift + PAGE_SIZE // 2) // PAGE_SIZE, -1)

        return rank

    def _refetch_kept_pages(self) -> None:
        """Fetch the most recently used kept pages again (they may hold changed rows)."""
        for number in [n for n in self._pages if n != 0][-MAX_WANTED:]:
            self._wanted.append(number)
        self._fetch_next()

    def _emit_all_changed(self) -> None:
        if self._count:
            last = self.index(self._count - 1, len(self.HEADERS) - 1)
            self.dataChanged.emit(self.index(0, 0), last)

    def _request_page(self, number: int) -> None:
        if number == self._fetching:
            return
        if number in self._wanted:
            self._wanted.remove(number)
        self._wanted.append(number)
        del self._wanted[:-MAX_WANTED]
        self._fetch_next()

    def _fetch_next(self) -> None:
        """Fetch the most recently wanted page, one page at a time per list."""
        if self._fetching is not None or not self._wanted:
            return
        number = self._wanted.pop()
        self._fetching = number
        query, generation, upto = self._query, self._generation, self._upto

        def job() -> list[Any]:
            return self.fetch_page(query, number * PAGE_SIZE, PAGE_SIZE, upto)

        self._runner.submit(job, lambda rows: self._on_page(generation, number, rows),
                            lambda exc: self._on_page_failed(generation, exc))

    def _on_page_failed(self, generation: int, exc: object) -> None:
        if generation == self._generation:
            self._fetching = None
            self._runner.error.emit(exc)

    def _on_page(self, generation: int, number: int, rows: list[Any]) -> None:
        if generation != self._generation:
            return  # a refresh came in between; it cleared the wishes and the cache
        self._fetching = None
        self._pages[number] = rows
        self._pages.move_to_end(number)
        while len(self._pages) > MAX_PAGES:
            # The least recently used page goes; never page 0, which the next refresh
            # compares against to tell new rows on top from other changes.
            del self._pages[next(n for n in self._pages if n != 0)]
        first = number * PAGE_SIZE
        last = min(self._count, first + PAGE_SIZE) - 1
        if last >= first:
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(self.HEADERS) - 1))
        self.page_loaded.emit(number)
        self._fetch_next()

    # Qt overrides --------------------------------------------------------------------------
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
            if role == DISPLAY and index.column() == self.PLACEHOLDER_COLUMN:
                return "…"
            return None
        i = index.row() % PAGE_SIZE
        item = page[i] if i < len(page) else None
        if item is None:  # a row not known since rows moved: fetch its page
            self._request_page(number)
            if role == DISPLAY and index.column() == self.PLACEHOLDER_COLUMN:
                return "…"
            return None
        if role == USER:
            return self.key(item)
        return self.cell(item, index.column(), role)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = DISPLAY
    ) -> Any:
        if role == DISPLAY and orientation == Qt.Orientation.Horizontal:
            if 0 <= section < len(self.HEADERS):
                return self.HEADERS[section]
        return None
