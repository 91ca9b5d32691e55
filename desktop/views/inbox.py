"""The Inbox tab: search as you type, the captured messages, and the preview."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QPushButton, QSplitter, QVBoxLayout, QWidget

from desktop.models.inbox import InboxModel
from desktop.models.message import MessageView
from desktop.views.preview import MessagePreview
from desktop.views.widgets import make_table, plain_label, set_column_widths
from mailcatcher.search import parse_search

SEARCH_DEBOUNCE_MS = 200


class InboxView(QWidget):
    """Emits intents (open, delete, clear, mark read); shows the model and a preview."""

    message_selected = Signal(int)
    # The previewed message is not among the loaded rows after a refresh: does it still
    # exist? (The main window asks the store and calls `message_gone` if not.)
    check_message_requested = Signal(int)
    delete_requested = Signal(list)
    clear_requested = Signal()
    mark_read_requested = Signal(list, bool)

    def __init__(self, model: InboxModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.search_edit = QLineEdit(self)
        self.search_edit.setObjectName("search_edit")
        self.search_edit.setPlaceholderText("Search subject, addresses and body (Ctrl+F)")
        self.search_edit.setClearButtonEnabled(True)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(SEARCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.apply_search)
        self.search_edit.textChanged.connect(lambda _: self._debounce.start())
        escape = QShortcut(QKeySequence(Qt.Key.Key_Escape), self.search_edit)
        escape.setContext(Qt.ShortcutContext.WidgetShortcut)
        escape.activated.connect(self.clear_search)
        self.count_label = plain_label("", self)
        self.count_label.setObjectName("inbox_count")
        self.read_button = QPushButton("Mark unread", self)
        self.read_button.setObjectName("read_button")
        self.read_button.clicked.connect(self.on_toggle_read)
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.setObjectName("delete_button")
        self.delete_button.setToolTip("Delete the selected messages (Delete)")
        self.delete_button.clicked.connect(self.on_delete)
        self.clear_button = QPushButton("Clear all", self)
        self.clear_button.setObjectName("clear_button")
        self.clear_button.clicked.connect(self.clear_requested)

        bar = QHBoxLayout()
        bar.addWidget(self.search_edit, 1)
        bar.addWidget(self.count_label)
        bar.addWidget(self.read_button)
        bar.addWidget(self.delete_button)
        bar.addWidget(self.clear_button)

        self.table = make_table(model, self, stretch_column=InboxModel.COL_SUBJECT,
                                multi_select=True, object_name="inbox_table")
        # To gets the room From does not need (one sender, many recipients, in a sign-up
        # tool); Note fits "dup. of #12345", the mark of a message the worker sent twice.
        set_column_widths(self.table, {0: 8, 1: 9, 2: 17, 4: 7, 5: 3, 6: 13})
        # Subject (the column that stretches) right after the time: it stays readable
        # when the list pane is narrow.
        self.table.horizontalHeader().moveSection(InboxModel.COL_SUBJECT, 1)
        self.table.selectionModel().currentRowChanged.connect(self._on_current)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.model.modelReset.connect(self.restore_selection)
        self.model.refreshed.connect(self._on_refreshed)
        self.model.page_loaded.connect(lambda _: self.restore_selection())
        self.preview = MessagePreview(self)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("inbox_splitter")
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.preview)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([720, 680])
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.splitter, 1)
        self._selected_id: int | None = None
        self._search_changed = False  # the list was refiltered since the preview was chosen
        # After Delete: the row to select, once a refresh no longer lists these ids.
        self._select_after_delete: tuple[int, frozenset[int]] | None = None
        self._update_buttons()

    # Search ----------------------------------------------------------------------------
    def focus_search(self) -> None:
        """Put the cursor in the search box (Ctrl+F)."""
        self.search_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_edit.selectAll()

    def apply_search(self) -> None:
        """Filter the list by the search box now (normally after a short pause in typing)."""
        self._debounce.stop()
        if (self.search_edit.text().strip() or None) != self.model.search:
            self._search_changed = True
        self.model.set_search(self.search_edit.text())

    def clear_search(self) -> None:
        """Empty the search box and show every message (Escape in the search box)."""
        self.search_edit.clear()
        self.apply_search()

    def clear_preview(self) -> None:
        """Show no message: nothing selected, the preview empty, its actions off."""
        self._selected_id = None
        self.table.selectionModel().clearSelection()
        self.preview.show_message(None)
        self._update_buttons()

    def message_gone(self, message_id: int) -> None:
        """The store says this message no longer exists: stop showing it."""
        if message_id == self._selected_id:
            self.clear_preview()

    # Selection -------------------------------------------------------------------------
    @property
    def selected_id(self) -> int | None:
        """The id of the message in the preview."""
        return self._selected_id

    def selected_ids(self) -> list[int]:
        """Ids of the selected messages (whose pages are loaded)."""
        ids = []
        for index in self.table.selectionModel().selectedRows():
            summary = self.model.message_at(index.row())
            if summary is not None:
                ids.append(int(summary.id))
        return ids

    def open_message(self, message_id: int) -> None:
        """Show a message in the preview and select it if listed (from the sign-up path)."""
        self._selected_id = message_id
        row = self.model.row_of(message_id)
        if row is not None:
            self._select_row(row)
        self.message_selected.emit(message_id)

    def _select_row(self, row: int) -> None:
        index = self.model.index(row, 0)
        flags = (QItemSelectionModel.SelectionFlag.ClearAndSelect
                 | QItemSelectionModel.SelectionFlag.Rows)
        self.table.selectionModel().setCurrentIndex(index, flags)
        self.table.scrollTo(index)

    def _on_current(self, current: object, _previous: object) -> None:
        row = self.table.currentIndex().row()
        summary = self.model.message_at(row) if row >= 0 else None
        if summary is not None and int(summary.id) != self._selected_id:
            self._selected_id = int(summary.id)
            self._select_after_delete = None  # a message was chosen meanwhile
            self.message_selected.emit(self._selected_id)
        self._update_buttons()

    def restore_selection(self) -> None:
        """Keep the previewed message selected when the list is rebuilt."""
        if self._selected_id is None or self.table.selectionModel().hasSelection():
            return
        row = self.model.row_of(self._selected_id)
        if row is not None:
            self.table.selectionModel().blockSignals(True)
            try:
                self._select_row(row)
            finally:
                self.table.selectionModel().blockSignals(False)
            self.table.viewport().update()

    def _on_refreshed(self) -> None:
        total = self.model.total
        if self.model.search:
            what = "match" if total == 1 else "matches"
        else:
            what = "captured"
        ignored = parse_search(self.model.search).ignored if self.model.search else ()
        parts = ", ".join(part.split(" ", 1)[0] for part in ignored)
        self.count_label.setText(f"{total} {what}" + (f" · ignored {parts}" if parts else ""))
        self.count_label.setToolTip("\n".join(f"Ignored {part}" for part in ignored))
        pending = self._select_after_delete
        if pending is not None and not self._selected_id:
            # After Delete the next message is selected, so Delete can be pressed again;
            # not before the deletion shows (a refresh begun before it still lists them).
            wanted, deleted = pending
            if not any(self.model.row_of(i) is not None for i in deleted):
                self._select_after_delete = None
                row = min(wanted, self.model.rowCount() - 1)
                if row >= 0 and self.model.message_at(row) is not None:
                    self._select_row(row)
        self.restore_selection()
        selected = self._selected_id
        if selected is not None and self.model.row_of(selected) is None:
            if total == 0 or self._search_changed:
                self.clear_preview()  # cleared, or filtered out by the search
            else:
                self.check_message_requested.emit(selected)
        self._search_changed = False
        self._update_buttons()

    # Intents ---------------------------------------------------------------------------
    def on_delete(self) -> None:
        ids = self.selected_ids()
        if len(ids) == 1 and self._selected_id is not None:
            # One message chosen: delete the one the preview shows. A row can come to hold
            # another message for a moment while mail streams in (its page is re-read).
            ids = [self._selected_id]
        if ids:
            rows = [i.row() for i in self.table.selectionModel().selectedRows()]
            if self._selected_id in ids:
                self.clear_preview()
                # The first row left after the deletion is the next message down.
                self._select_after_delete = (min(rows), frozenset(ids)) if rows else None
            self.delete_requested.emit(ids)

    def on_toggle_read(self) -> None:
        message = self.preview.message
        if message is None:
            return
        ids = self.selected_ids() or [message.id]
        self.mark_read_requested.emit(ids, not self._current_read())

    def _current_read(self) -> bool:
        row = self.table.currentIndex().row()
        summary = self.model.message_at(row) if row >= 0 else None
        return bool(summary.read) if summary is not None else True

    def show_message(self, message: MessageView) -> None:
        """Show a loaded message, if it is still the one asked for."""
        if message.id != self._selected_id:
            return
        self.preview.show_message(message)
        self.model.update_message(message.summary)
        self._update_buttons()

    def _update_buttons(self) -> None:
        has = self.table.selectionModel().hasSelection()
        self.delete_button.setEnabled(has)
        self.read_button.setEnabled(self.preview.message is not None)
        self.read_button.setText("Mark unread" if self._current_read() else "Mark read")
        self.clear_button.setEnabled(self.model.total > 0)
