"""The Outbox tab: every outbound email, the attempts of the selected one, retry actions."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QPushButton, QSplitter, QVBoxLayout, QWidget

from desktop.models.outbox import AttemptsModel, OutboxModel
from desktop.views.widgets import make_table, plain_label, set_column_widths

STATUSES = ("queued", "sending", "retrying", "sent", "failed")
RETRYABLE = ("failed", "retrying")
RETRY_TIP = ("Retry the selected email(s) (Ctrl+R): a failed one is queued again with a fresh "
             "budget of attempts; a retrying one is sent now instead of at its next attempt "
             "time (its attempts and budget are kept)")


class OutboxView(QWidget):
    """Emits retry intents and the selected email; shows queue depth and worker status."""

    retry_requested = Signal(list)  # outbox ids
    retry_failed_requested = Signal()
    outbox_selected = Signal(object)  # outbox id or None
    status_filter_changed = Signal(object)  # status or None

    def __init__(self, model: OutboxModel, attempts: AttemptsModel,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.attempts_model = attempts
        self.filter_combo = QComboBox(self)
        self.filter_combo.setObjectName("outbox_filter")
        self.filter_combo.addItem("All states", None)
        for status in STATUSES:
            self.filter_combo.addItem(status.capitalize(), status)
        self.filter_combo.currentIndexChanged.connect(
            lambda _: self.status_filter_changed.emit(self.filter_combo.currentData())
        )
        self.retry_button = QPushButton("Retry", self)
        self.retry_button.setObjectName("retry_button")
        self.retry_button.setToolTip(RETRY_TIP)
        self.retry_button.clicked.connect(self.on_retry)
        self.retry_all_button = QPushButton("Retry all failed", self)
        self.retry_all_button.setObjectName("retry_all_button")
        self.retry_all_button.clicked.connect(self.retry_failed_requested)
        self.queue_label = plain_label("Queue: …", self)
        self.queue_label.setObjectName("queue_label")

        bar = QHBoxLayout()
        bar.addWidget(self.filter_combo)
        bar.addWidget(self.retry_button)
        bar.addWidget(self.retry_all_button)
        bar.addStretch(1)
        bar.addWidget(self.queue_label)

        self.table = make_table(model, self, stretch_column=OutboxModel.COL_LAST, multi_select=True,
                                object_name="outbox_table")
        set_column_widths(self.table, {0: 5, 1: 10, 2: 26, 3: 8, 4: 8, 5: 10, 7: 9, 8: 9})
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.model.modelReset.connect(self.restore_selection)
        self.model.page_loaded.connect(lambda _: self.restore_selection())
        self.attempts_table = make_table(attempts, self, stretch_column=AttemptsModel.COL_REPLY,
                                         object_name="attempts_table")
        set_column_widths(self.attempts_table, {0: 7, 1: 22, 2: 8, 3: 5, 5: 9})
        self.attempts_title = plain_label("Delivery attempts of the selected email", self)
        lower = QWidget(self)
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.attempts_title)
        lower_layout.addWidget(self.attempts_table, 1)
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.setObjectName("outbox_splitter")
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(lower)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.splitter, 1)
        self._selected_id: int | None = None
        self._update_buttons()

    @property
    def selected_ids(self) -> list[int]:
        """Ids of the selected outbound emails."""
        ids = []
        for index in self.table.selectionModel().selectedRows():
            row = self.model.row_at(index.row())
            if row is not None:
                ids.append(int(row.id))
        return ids

    @property
    def selected_id(self) -> int | None:
        """The outbox id whose attempts are shown."""
        return self._selected_id

    def select_outbox(self, outbox_id: int) -> None:
        """Select one outbound email by id (if listed)."""
        row = self.model.row_of(outbox_id)
        if row is not None:
            self.table.selectRow(row)

    def on_retry(self) -> None:
        ids = self.selected_ids
        if ids:
            self.retry_requested.emit(ids)

    def show_queue(self, text: str) -> None:
        """Show queue depth and worker status."""
        self.queue_label.setText(text)

    def rows_changed(self) -> None:
        """Call after the model got new rows: keeps buttons and selection right."""
        self.restore_selection()
        self._update_buttons()

    def restore_selection(self) -> None:
        """Re-select the remembered email after the list was reset."""
        if self._selected_id is not None and not self.table.selectionModel().hasSelection():
            self.select_outbox(self._selected_id)

    def _on_selection(self, *_: object) -> None:
        ids = self.selected_ids
        new_id = ids[0] if ids else None
        if new_id is not None and new_id != self._selected_id:
            self._selected_id = new_id
            self.outbox_selected.emit(new_id)
        self._update_buttons()

    def _update_buttons(self) -> None:
        rows = [self.model.row_at(i.row()) for i in self.table.selectionModel().selectedRows()]
        self.retry_button.setEnabled(any(r is not None and r.status in RETRYABLE for r in rows))

    def show_failed_count(self, count: int) -> None:
        """How many emails are failed in all (not only those listed)."""
        self.retry_all_button.setEnabled(count > 0)
        label = f"Retry all failed ({count})" if count else "Retry all failed"
        self.retry_all_button.setText(label)
